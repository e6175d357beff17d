/* rt_post_offer URL OFFER_FILE: POST the SDP offer in OFFER_FILE to URL through the firmware's
 * signalling code (rt_signal_post_offer), the API key from RT_API_KEY; print the answer on stdout.
 * Exit 0 on success, 1 with a one-line reason on stderr. Driven by tests/test_firmware_host.py. */
#include <stdio.h>
#include <stdlib.h>

#include "rt_signal.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s URL OFFER_FILE (key in RT_API_KEY)\n", argv[0]);
        return 2;
    }
    const char *key = getenv("RT_API_KEY");
    FILE *f = fopen(argv[2], "rb");
    static char offer[16384], answer[16384];
    if (key == NULL || f == NULL) {
        fprintf(stderr, "need RT_API_KEY and a readable offer file\n");
        return 2;
    }
    size_t n = fread(offer, 1, sizeof(offer) - 1, f);
    fclose(f);
    offer[n] = '\0';
    rt_signal_info_t info;
    rt_signal_result_t rc = rt_signal_post_offer(argv[1], key, offer, answer, sizeof(answer), 5000, &info);
    if (rc != RT_SIGNAL_OK) {
        fprintf(stderr, "signalling failed (%d, status %d): %s\n", (int)rc, info.status, info.why);
        return 1;
    }
    fputs(answer, stdout);
    return 0;
}
