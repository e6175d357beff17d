# PlatformIO `post:` extra script (SCons), loaded by rtflash only when the toolchain is the compile-only
# stand-in (../shared/pio-offline; builder/pio.py's overlay ini). Never imported as a Python module.
#
# It defines the SCons alias `rtflash-firmware`: the firmware's own translation units and their
# dependencies' (every component whose sources lie outside ESP-IDF: firmware-src/main and components,
# libpeer, the registry components), taken from the nodes the espidf builder itself made from the CMake
# code model. `pio run -t rtflash-firmware` then compiles exactly those with the builder's flags and
# skips ESP-IDF's own ~1200 TUs and the bootloader, which the stand-in cannot link anyway.
import glob
import json
import os

Import("env")  # noqa: F821 (SCons)

build_dir = env.subst("$BUILD_DIR")  # noqa: F821
framework = os.path.realpath(env.PioPlatform().get_package_dir("framework-espidf"))  # noqa: F821
reply = os.path.join(build_dir, ".cmake", "api", "v1", "reply")
with open(max(glob.glob(os.path.join(reply, "codemodel-v2-*.json"))), encoding="utf8") as fp:
    codemodel = json.load(fp)
top = codemodel["paths"]["source"]

nodes = list(env.Flatten(env.get("PIOBUILDFILES", [])))  # noqa: F821  the `main` component's objects
names = ["main"]
for ref in codemodel["configurations"][0]["targets"]:
    with open(os.path.join(reply, ref["jsonFile"]), encoding="utf8") as fp:
        target = json.load(fp)
    if target.get("type") != "STATIC_LIBRARY":
        continue
    source = os.path.realpath(os.path.join(top, target["paths"]["source"]))
    if source == framework or source.startswith(framework + os.sep):
        continue
    lib = env.File(os.path.join(build_dir, target["paths"]["build"], target["nameOnDisk"]))  # noqa: F821
    if lib.has_builder():  # the builder made a Library for it (not the project's own __pio_env)
        nodes.append(lib)
        names.append(target["name"].replace("__idf_", ""))

env.Alias("rtflash-firmware", nodes)  # noqa: F821
print(f"rtflash: firmware target: {', '.join(names)}")
