from rtflash.cli import main

main()
