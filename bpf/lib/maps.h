/* The maps, in the legacy "maps" section twill's loader reads (lib/bpf/elf.ts); their key and
 * value layouts are in twill_maps.h. max_entries are the loader's defaults; it sizes the maps
 * from the network's config. */
#ifndef TWILL_LIB_MAPS_H
#define TWILL_LIB_MAPS_H

#include "common.h"

struct twill_map_def SEC("maps") endpoints = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(struct ep_key),
	.value_size = sizeof(struct ep_value),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct ep_counters),
	.max_entries = 1024,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") ipcache = {
	.type = BPF_MAP_TYPE_LPM_TRIE,
	.key_size = sizeof(struct ipc_key),
	.value_size = sizeof(struct ipc_value),
	.max_entries = 65536,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") policy = {
	.type = BPF_MAP_TYPE_LPM_TRIE,
	.key_size = sizeof(struct pol_key),
	.value_size = sizeof(struct pol_value),
	.max_entries = 65536,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct twill_map_def SEC("maps") flows = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct flow_key),
	.value_size = sizeof(struct flow_value),
	.max_entries = 8192,
};

struct twill_map_def SEC("maps") events = {
	.type = BPF_MAP_TYPE_RINGBUF,
	.max_entries = 256 * 1024,
};

struct twill_map_def SEC("maps") observer = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct twill_map_def SEC("maps") frags = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct frag_key),
	.value_size = sizeof(struct frag_value),
	.max_entries = 4096,
};

struct twill_map_def SEC("maps") echoes = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(struct echo_key),
	.value_size = sizeof(__u64),
	.max_entries = 4096,
};

/* Not a map: a pointer to the ABI's types (twill_maps.h), so that the object's BTF holds
 * them for lib/bpf/abi.generated.ts. In a section of its own that no loader reads; no
 * program refers to it. */
struct twill_abi *twill_abi SEC(".twill_abi");

#endif
