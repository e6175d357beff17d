# Pinned third-party code for the firmware (firmware-src/deps.toml), resolved at configure time.
#
# RT_DEPS_DIR: where DIR/<name> checkouts live. From -DRT_DEPS_DIR (rtflash build --deps-dir), else
# $RTFLASH_DEPS_DIR, else the rtflash cache ($RTFLASH_DEPS_CACHE, $XDG_CACHE_HOME/rtflash/deps,
# ~/.cache/rtflash/deps). A git dependency missing from the cache is cloned there at its pinned
# commit (network needed once); one given with --deps-dir is used as is (offline), after checking
# its commit when it is a git checkout.

cmake_policy(SET CMP0057 NEW)  # if(... IN_LIST ...), also when run with cmake -P

# rt_deps_read_manifest(MANIFEST OUT_GIT OUT_REGISTRY): the [git.NAME] names and the [registry."NS/NAME"]
# folder names (NS__NAME, as the component manager names them); sets RT_DEP_<name>_{url,commit,version,
# tree,targets} in the caller's scope.
function(rt_deps_read_manifest manifest out_names out_registry)
    file(STRINGS "${manifest}" lines)
    set(names "")
    set(registry "")
    set(current "")
    foreach(line IN LISTS lines)
        if(line MATCHES "^\\[git\\.([A-Za-z0-9_.-]+)\\]")
            set(current "${CMAKE_MATCH_1}")
            list(APPEND names "${current}")
        elseif(line MATCHES "^\\[registry\\.\"([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)\"\\]")
            set(current "${CMAKE_MATCH_1}__${CMAKE_MATCH_2}")
            list(APPEND registry "${current}")
        elseif(line MATCHES "^\\[")
            set(current "")
        elseif(current AND line MATCHES "^(url|commit|version|tree) *= *\"([^\"]+)\"")
            set(RT_DEP_${current}_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}" PARENT_SCOPE)
        elseif(current AND line MATCHES "^targets *= *\\[(.*)\\]")
            string(REPLACE "\"" "" targets "${CMAKE_MATCH_1}")
            string(REPLACE " " "" targets "${targets}")
            string(REPLACE "," ";" targets "${targets}")
            set(RT_DEP_${current}_targets "${targets}" PARENT_SCOPE)
        endif()
    endforeach()
    set(${out_names} "${names}" PARENT_SCOPE)
    set(${out_registry} "${registry}" PARENT_SCOPE)
endfunction()

# rt_deps_tree_fingerprint(DIR OUT): sha256 over "<sha256>  ./<path>" lines of every file, sorted by path,
# .git/ left out, a symlink hashed by its target text as git stores it (never followed): the same value
# as rtflash.deps.tree_fingerprint and the shell line in deps.toml, whether links are links or files.
function(rt_deps_tree_fingerprint dir out)
    cmake_policy(SET CMP0009 NEW)   # GLOB_RECURSE does not descend into symlinked directories
    file(GLOB_RECURSE files LIST_DIRECTORIES true RELATIVE "${dir}" "${dir}/*")
    list(FILTER files EXCLUDE REGEX "^\\.git(/|$)")
    list(SORT files)
    set(text "")
    foreach(f IN LISTS files)
        if(IS_SYMLINK "${dir}/${f}")
            file(READ_SYMLINK "${dir}/${f}" target)
            string(SHA256 h "${target}")
        elseif(IS_DIRECTORY "${dir}/${f}")
            continue()
        else()
            file(SHA256 "${dir}/${f}" h)
        endif()
        string(APPEND text "${h}  ./${f}\n")
    endforeach()
    string(SHA256 sum "${text}")
    set(${out} "${sum}" PARENT_SCOPE)
endfunction()

# rt_deps_verify_tree(NAME DIR): a plain (non-git) copy must have the fingerprint deps.toml records.
function(rt_deps_verify_tree name dir)
    if(NOT RT_DEP_${name}_tree)
        message(FATAL_ERROR "${dir} is not a git checkout and deps.toml records no tree fingerprint for "
                            "${name}: it cannot be verified; use a git checkout (`rtflash deps --fetch`)")
    endif()
    rt_deps_tree_fingerprint("${dir}" got)
    if(NOT got STREQUAL RT_DEP_${name}_tree)
        message(FATAL_ERROR "${dir} differs from the pinned ${name} (tree fingerprint ${got}, deps.toml "
                            "${RT_DEP_${name}_tree}): replace it with the pinned copy (`rtflash deps --check`)")
    endif()
endfunction()

function(rt_deps_default_dir out)
    if(DEFINED ENV{RTFLASH_DEPS_DIR} AND NOT "$ENV{RTFLASH_DEPS_DIR}" STREQUAL "")
        set(dir "$ENV{RTFLASH_DEPS_DIR}")
    elseif(DEFINED ENV{RTFLASH_DEPS_CACHE} AND NOT "$ENV{RTFLASH_DEPS_CACHE}" STREQUAL "")
        set(dir "$ENV{RTFLASH_DEPS_CACHE}")
    elseif(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
        set(dir "$ENV{XDG_CACHE_HOME}/rtflash/deps")
    else()
        set(dir "$ENV{HOME}/.cache/rtflash/deps")
    endif()
    set(${out} "${dir}" PARENT_SCOPE)
endfunction()

# rt_deps_resolve(TARGET MANIFEST): sets RT_DEPS_DIR (cache) and makes every git dep for TARGET present.
macro(rt_deps_resolve target manifest)
    set(_rt_explicit FALSE)
    if(RT_DEPS_DIR)
        set(_rt_explicit TRUE)
    else()
        # A normal variable, not the cache: the cache keeps what -DRT_DEPS_DIR said (rtflash passes it,
        # empty without --deps-dir, on every run), so neither a default nor an old --deps-dir sticks.
        rt_deps_default_dir(_rt_dir)
        set(RT_DEPS_DIR "${_rt_dir}")
    endif()
    rt_deps_read_manifest("${manifest}" _rt_names _rt_registry)
    find_program(RT_GIT git)
    foreach(_rt_name IN LISTS _rt_names)
        if(NOT "${target}" STREQUAL "" AND NOT "${target}" IN_LIST RT_DEP_${_rt_name}_targets)
            continue()
        endif()
        set(_rt_path "${RT_DEPS_DIR}/${_rt_name}")
        set(_rt_commit "${RT_DEP_${_rt_name}_commit}")
        if(NOT EXISTS "${_rt_path}")
            if(_rt_explicit)
                message(FATAL_ERROR "--deps-dir ${RT_DEPS_DIR} has no ${_rt_name}/; fetch it with "
                                    "`rtflash deps --fetch --cache ${RT_DEPS_DIR}`")
            endif()
            if(NOT RT_GIT)
                message(FATAL_ERROR "git is needed to fetch ${_rt_name}; install git or run `rtflash deps --fetch`")
            endif()
            message(STATUS "rtflash deps: fetching ${_rt_name} ${_rt_commit} from ${RT_DEP_${_rt_name}_url}")
            set(_rt_tmp "${_rt_path}.partial")
            file(REMOVE_RECURSE "${_rt_tmp}")
            execute_process(COMMAND "${RT_GIT}" clone --filter=blob:none --no-checkout --quiet
                                    "${RT_DEP_${_rt_name}_url}" "${_rt_tmp}" RESULT_VARIABLE _rt_rc)
            if(_rt_rc EQUAL 0)
                execute_process(COMMAND "${RT_GIT}" -c advice.detachedHead=false checkout --quiet --detach "${_rt_commit}"
                                WORKING_DIRECTORY "${_rt_tmp}" RESULT_VARIABLE _rt_rc)
            endif()
            if(NOT _rt_rc EQUAL 0)
                file(REMOVE_RECURSE "${_rt_tmp}")
                message(FATAL_ERROR "cannot fetch ${_rt_name} at ${_rt_commit}: no network? Fetch once with "
                                    "`rtflash deps --fetch` and build with `--deps-dir`")
            endif()
            file(RENAME "${_rt_tmp}" "${_rt_path}")
        endif()
        if(EXISTS "${_rt_path}/.git" AND RT_GIT)
            execute_process(COMMAND "${RT_GIT}" rev-parse HEAD WORKING_DIRECTORY "${_rt_path}"
                            OUTPUT_VARIABLE _rt_head OUTPUT_STRIP_TRAILING_WHITESPACE)
            if(NOT _rt_head STREQUAL _rt_commit)
                message(FATAL_ERROR "${_rt_path} is at ${_rt_head}, deps.toml pins ${_rt_commit}: "
                                    "run `rtflash deps --fetch`")
            endif()
        else()
            rt_deps_verify_tree("${_rt_name}" "${_rt_path}")
        endif()
    endforeach()
    # Registry components in RT_DEPS_DIR/components/<ns>__<name> (offline builds): the pinned version
    # and tree, or a clear stop. Absent ones are the component manager's to fetch.
    foreach(_rt_name IN LISTS _rt_registry)
        if(NOT "${target}" STREQUAL "" AND NOT "${target}" IN_LIST RT_DEP_${_rt_name}_targets)
            continue()
        endif()
        set(_rt_path "${RT_DEPS_DIR}/components/${_rt_name}")
        if(NOT EXISTS "${_rt_path}")
            if(_rt_explicit AND "$ENV{IDF_COMPONENT_MANAGER}" STREQUAL "0")
                message(FATAL_ERROR "--deps-dir ${RT_DEPS_DIR} has no components/${_rt_name}/ and the component "
                                    "manager is off: copy it there with `rtflash deps --fetch --from DIR`")
            endif()
            continue()
        endif()
        file(STRINGS "${_rt_path}/idf_component.yml" _rt_version REGEX "^version:")
        string(REGEX REPLACE "^version: *['\"]?([^'\" ]+).*" "\\1" _rt_version "${_rt_version}")
        if(NOT _rt_version STREQUAL RT_DEP_${_rt_name}_version)
            message(FATAL_ERROR "${_rt_path} is version ${_rt_version}, deps.toml pins "
                                "${RT_DEP_${_rt_name}_version}: replace it with the pinned copy")
        endif()
        rt_deps_verify_tree("${_rt_name}" "${_rt_path}")
    endforeach()
endmacro()
