/*
 * malloc_trim(0) for Node, which does not expose it: what a quiet baton worker calls after its garbage collection
 * (lib/worker/malloc-trim.ts). glibc's free() gives memory back to the kernel only from the top of its heap; the
 * 64 KiB socket read buffers a load churns through leave most of the heap free but resident behind a few live
 * allocations (a Node 24 worker after 3 000 concurrent uploads: 91 MiB of its main arena, 5 MiB after this). Node-API
 * only, so one build loads in every Node from 20 on. Built by scripts/lib/build-native.mjs when a C compiler and
 * Node's headers are there; without it, a worker keeps that memory and works the same.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* 1 when memory went back to the kernel, 0 when none could, -1 on a C library without malloc_trim. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = -1;
#if defined(__GLIBC__)
  released = malloc_trim(0);
#endif
  napi_value out;
  if (napi_create_int32(env, released, &out) != napi_ok) return NULL;
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}
