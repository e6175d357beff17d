/* A minimal unit-test harness for the host tests: CHECK records failures with file:line and keeps
 * going; RT_TEST_MAIN prints "N passed, N failed" and returns non-zero on any failure. */
#pragma once

#include <stdio.h>
#include <string.h>

static int rt_checks, rt_failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        rt_checks++;                                                                  \
        if (!(cond)) {                                                                \
            rt_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define CHECK_STR(got, want)                                                          \
    do {                                                                              \
        const char *g_ = (got), *w_ = (want);                                         \
        rt_checks++;                                                                  \
        if (g_ == NULL || strcmp(g_, w_) != 0) {                                      \
            rt_failures++;                                                            \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__,  \
                    g_ ? g_ : "(null)", w_);                                          \
        }                                                                             \
    } while (0)

#define RUN(fn)                       \
    do {                              \
        int before_ = rt_failures;    \
        fn();                         \
        printf("%s %s\n", rt_failures == before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

#define RT_TEST_DONE()                                                                 \
    do {                                                                               \
        printf("%d passed, %d failed\n", rt_checks - rt_failures, rt_failures);        \
        return rt_failures ? 1 : 0;                                                    \
    } while (0)
