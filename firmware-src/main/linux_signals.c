/* linux target only: SIGTERM and SIGHUP always end the process, at once.
 * Why: ESP-IDF's POSIX FreeRTOS port (components/freertos/FreeRTOS-Kernel/portable/linux/port.c)
 * blocks every signal but SIGINT in the scheduler thread and in each task thread whenever it is in a
 * critical section, a tick handler or suspended; only the task running with interrupts enabled takes
 * a process-directed SIGTERM. When none does, the signal stays pending and the firmware runs on
 * (seen: `kill` ignored mid-session). A plain thread, started by a constructor before the port masks
 * anything, waits for those signals with sigwait(), so one is always there to take them; it then
 * ends the process by the same signal (exit status 128 + n, as without this thread).
 * The thread blocks every signal itself, so the port's SIGALRM tick never lands on it. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>

static void *wait_for_stop(void *arg)
{
    (void)arg;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    /* default action, by the same signal: unblocked in this thread only, raised at this thread */
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    return NULL;
}

void rt_linux_signals_start(void);

__attribute__((constructor)) void rt_linux_signals_start(void)
{
    sigset_t all, old;
    sigfillset(&all);
    /* the new thread inherits the creator's mask: everything blocked from its first instruction */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_create(&thread, &attr, wait_for_stop, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
