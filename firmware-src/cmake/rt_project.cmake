# The rtflash firmware's project set-up: everything a project CMakeLists.txt does before `project()`.
#
# Included by firmware-src/CMakeLists.txt (bare `idf.py -C firmware-src` still works) and by the thin
# project folder rtflash renders per board (templates/project/CMakeLists.txt.j2 ->
# build/<board>/project/CMakeLists.txt), which is what rtflash builds: firmware-src may sit in
# site-packages, and with the component manager on ESP-IDF writes dependencies.lock and
# managed_components/ into the PROJECT dir, so the project dir must not be firmware-src.
#
# Inputs (set before include()):
#   RT_FIRMWARE_DIR    the firmware-src folder (default: the folder above this file).
#   RT_DEPS_DIR        -DRT_DEPS_DIR=DIR: local copies of the pinned deps (cmake/rt_deps.cmake). Empty
#                      or unset: the deps cache. rtflash passes it on EVERY configure (empty without
#                      --deps-dir), so a command-line value always replaces the cached one.
#   RT_PROJECT_MAIN_ADDED  hook for builders that register firmware-src/main themselves (PlatformIO's
#                      espidf builder adds `src_dir` as the `main` component): set it TRUE and this file
#                      does not add ${RT_FIRMWARE_DIR}/main to EXTRA_COMPONENT_DIRS (no duplicate `main`).
# Outputs: PROJECT_VER, EXTRA_COMPONENT_DIRS (appended), COMPONENTS (linux target only), RT_DEPS_DIR.
#
# Registry components (esp_codec_dev, esp-opus, srtp) come from ${RT_DEPS_DIR}/components when that
# folder exists (laid out `<ns>__<name>`, the names the component manager gives them), so a --deps-dir
# build is fully offline; rtflash then runs ESP-IDF with IDF_COMPONENT_MANAGER=0.

if(NOT DEFINED RT_FIRMWARE_DIR OR RT_FIRMWARE_DIR STREQUAL "")
    get_filename_component(RT_FIRMWARE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
endif()

set(PROJECT_VER "0.1.0")

# The target is known here from idf.py (-DIDF_TARGET / $IDF_TARGET); with neither, resolve for all.
if(DEFINED IDF_TARGET AND NOT IDF_TARGET STREQUAL "")
    set(rt_target "${IDF_TARGET}")
else()
    set(rt_target "$ENV{IDF_TARGET}")
endif()
include("${RT_FIRMWARE_DIR}/cmake/rt_deps.cmake")
rt_deps_resolve("${rt_target}" "${RT_FIRMWARE_DIR}/deps.toml")
message(STATUS "rtflash: firmware ${RT_FIRMWARE_DIR}, dependencies from ${RT_DEPS_DIR}")

get_filename_component(_rt_project_dir "${CMAKE_SOURCE_DIR}" REALPATH)
get_filename_component(_rt_firmware_real "${RT_FIRMWARE_DIR}" REALPATH)
if(NOT _rt_project_dir STREQUAL _rt_firmware_real)
    # A rendered project folder: firmware-src's own components (ESP-IDF adds them itself only when
    # firmware-src is the project dir).
    if(NOT RT_PROJECT_MAIN_ADDED)
        list(APPEND EXTRA_COMPONENT_DIRS "${RT_FIRMWARE_DIR}/main")
    endif()
    list(APPEND EXTRA_COMPONENT_DIRS "${RT_FIRMWARE_DIR}/components")
endif()
if(IS_DIRECTORY "${RT_DEPS_DIR}/components")
    list(APPEND EXTRA_COMPONENT_DIRS "${RT_DEPS_DIR}/components")
endif()

if(rt_target STREQUAL "linux")
    # FreeRTOS: ESP-IDF v5.5's own POSIX port (components/freertos, FreeRTOS-Kernel/portable/linux),
    # not esp-protocols' linux_compat shim. Read from the sources:
    # - the port is the complete kernel (queue.c, tasks.c, timers.c + esp_additions), so every call
    #   the firmware and ESP-IDF's components make exists (xQueueSendToBackFromISR, counting
    #   semaphores, vTaskDelayUntil, ...), where the shim implements a subset on pthreads and lacks
    #   xQueueSendToBackFromISR, *WithCaps, xSemaphoreCreateCounting and vTaskDelayUntil;
    # - its port_idf.c provides main() (starts the scheduler and runs app_main in the "main" task);
    #   the shim replaces the freertos component and with it main(), hence `undefined reference to main`;
    # - it runs one task at a time (a tick from SIGALRM); blocking in select() would stall the other
    #   tasks, which esp_additions/FreeRTOSSimulator_wrappers.c handles for builds without lwIP (this
    #   one): select() polls and yields. libpeer (agent.c) and esp-tls/esp_http_client wait in select()
    #   before every recv, so they coexist with the scheduler;
    # - esp_timer on linux is headers only in ESP-IDF; nothing built here calls it (esp_event only with
    #   ESP_EVENT_LOOP_PROFILING, esp-tls uses gettimeofday on linux), so the shim's esp_timer is not
    #   needed either, and no esp-protocols checkout is needed for the linux target at all.
    # esp_netif is stubbed as ESP-IDF's own linux examples do (esp_http_client includes esp_netif.h).
    list(APPEND EXTRA_COMPONENT_DIRS "$ENV{IDF_PATH}/examples/protocols/linux_stubs/esp_stubs")
    # Only what the firmware needs, as the upstream SDK does: `main` and its requirements, resolved
    # transitively by ESP-IDF (about two dozen components instead of all 71).
    set(COMPONENTS main)
endif()
