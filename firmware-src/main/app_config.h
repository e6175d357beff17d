/* Where the firmware's credentials and session settings come from: NVS namespace "rtflash"
 * (written by `rtflash provision`) on the device, the environment on the linux target. */
#pragma once

#include <stdbool.h>

#include "rt_config.h"

/* Fill cfg (defaults first). Logs each key's presence and length, never a value. Returns false,
 * with a log line per problem, when something needed to start is missing or invalid. */
bool app_config_load(rt_config_t *cfg);
