// A small object exercising what the loader links beyond twill's tc object: BTF-defined maps,
// a .rodata constant, a .data variable, bpf-to-bpf calls (static and global), a tail call
// through a prog array, and a cgroup connect4 program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, 4);
} results SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(__u32));
  __uint(max_entries, 2);
} jumps SEC(".maps");

const volatile __u32 magic = 0x5eed;
const volatile __u16 deny_port = 9;
__u32 bias = 2;

static __attribute__((noinline)) int add(int a, int b) {
  return a + b;
}

__attribute__((noinline)) int twice(int x) {
  return add(x, x);
}

SEC("tc/sub_call")
int sub_call(struct __sk_buff *skb) {
  return twice(20) + bias;
}

SEC("tc/rodata")
int rodata(struct __sk_buff *skb) {
  return magic;
}

SEC("tc/tail_entry")
int tail_entry(struct __sk_buff *skb) {
  bpf_tail_call(skb, &jumps, 0);
  return 1;
}

SEC("tc/tail_target")
int tail_target(struct __sk_buff *skb) {
  return 77;
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx) {
  __u32 k = 0;
  __u64 *n = bpf_map_lookup_elem(&results, &k);
  if (n) __sync_fetch_and_add(n, 1);
  return ctx->user_port == bpf_htons(deny_port) ? 0 : 1;
}

char _license[] SEC("license") = "GPL";
