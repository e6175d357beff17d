#include "sdkconfig.h"
#if CONFIG_SPIRAM
#include "esp_heap_caps.h"
#endif
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "rt_audio_priv.h"

void rt_audio_push_mic(rt_ring_t *mic, const int16_t *pcm, size_t n)
{
    rt_ring_write(mic, pcm, n * sizeof(int16_t));
}

esp_err_t rt_audio_spawn(const char *name, void (*fn)(void *), uint32_t stack, unsigned prio)
{
    BaseType_t ok;
#if CONFIG_SPIRAM
    /* idf_additions.h: stacks in PSRAM only where the board has PSRAM (CONFIG_SPIRAM) */
    ok = xTaskCreatePinnedToCoreWithCaps(fn, name, stack, NULL, prio, NULL, 1, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
#else
    ok = xTaskCreatePinnedToCore(fn, name, stack, NULL, prio, NULL, tskNO_AFFINITY);
#endif
    return ok == pdPASS ? ESP_OK : ESP_ERR_NO_MEM;
}
