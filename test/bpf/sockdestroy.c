// Socket iterators that abort chosen sockets: every connected UDP (iter/udp) or established TCP
// (iter/tcp) socket whose destination (family, address, port) is in `targets` is destroyed with
// bpf_sock_destroy, and its cookie written to the seq file (8 bytes each). Built without
// vmlinux.h: the iterators' contexts are declared here, and struct sock_common's fields are read
// at marker offsets the loader replaces with the running kernel's (FieldPatch with a span).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED 1

/* Marker offsets: each is moved to the kernel's offset of the field (test/integration/bpf-iter.test.ts). */
#define SK_FAMILY_MARKER 0x7d00   /* sock_common.skc_family, 2 bytes */
#define SK_STATE_MARKER 0x7d10    /* sock_common.skc_state, 1 byte */
#define SK_DPORT_MARKER 0x7d20    /* sock_common.skc_dport, 2 bytes */
#define SK_DADDR_MARKER 0x7d30    /* sock_common.skc_daddr, 4 bytes */
#define SK_V6_DADDR_MARKER 0x7d40 /* sock_common.skc_v6_daddr, 16 bytes */

/* A load at exactly sk + marker, as one instruction: written in C, clang may merge two branches'
 * loads into `r2 = sk + marker; r1 = *(r2 + 0)`, which the loader's patch would not find. */
#define SK_FIELD(sk, marker, width)                                                       \
  ({                                                                                      \
    __u64 __v;                                                                            \
    asm volatile("%0 = *(" #width " *)(%1 + %2)" : "=r"(__v) : "r"(sk), "i"(marker));    \
    __v;                                                                                  \
  })

struct seq_file;
struct sock_common;
struct bpf_iter_meta {
  struct seq_file *seq;
  __u64 session_id;
  __u64 seq_num;
};
/* The iterators' contexts: one u64 slot per argument of bpf_iter_udp / bpf_iter_tcp. */
struct bpf_iter__udp {
  struct bpf_iter_meta *meta;
  struct sock_common *udp_sk;
};
struct bpf_iter__tcp {
  struct bpf_iter_meta *meta;
  struct sock_common *sk_common;
};

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

struct target {
  __u32 family;
  __u8 addr[16];
  __be16 port;
  __u16 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct target);
  __type(value, __u32);
  __uint(max_entries, 64);
} targets SEC(".maps");

static __always_inline int destroy_if_target(struct bpf_iter_meta *meta, struct sock_common *sk) {
  struct target t = {};
  /* Connected sockets only: an unconnected UDP socket has no destination to judge, and
   * destroying it would free its port under its owner. */
  if (SK_FIELD(sk, SK_STATE_MARKER, u8) != TCP_ESTABLISHED)
    return 0;
  t.family = SK_FIELD(sk, SK_FAMILY_MARKER, u16);
  if (t.family == AF_INET) {
    *(__u32 *)t.addr = SK_FIELD(sk, SK_DADDR_MARKER, u32);
  } else if (t.family == AF_INET6) {
    /* In words: the address sits 4 bytes into the key, where an 8-byte stack store is misaligned. */
    __u32 *a = (__u32 *)t.addr;
    a[0] = SK_FIELD(sk, SK_V6_DADDR_MARKER, u32);
    a[1] = SK_FIELD(sk, SK_V6_DADDR_MARKER + 4, u32);
    a[2] = SK_FIELD(sk, SK_V6_DADDR_MARKER + 8, u32);
    a[3] = SK_FIELD(sk, SK_V6_DADDR_MARKER + 12, u32);
  } else {
    return 0;
  }
  t.port = SK_FIELD(sk, SK_DPORT_MARKER, u16);
  if (!bpf_map_lookup_elem(&targets, &t))
    return 0;
  __u64 cookie = bpf_get_socket_cookie(sk);
  if (bpf_sock_destroy(sk) == 0)
    bpf_seq_write(meta->seq, &cookie, sizeof(cookie));
  return 0;
}

SEC("iter/udp")
int destroy_udp(struct bpf_iter__udp *ctx) {
  struct sock_common *sk = ctx->udp_sk;
  if (!sk)
    return 0;
  return destroy_if_target(ctx->meta, sk);
}

SEC("iter/tcp")
int destroy_tcp(struct bpf_iter__tcp *ctx) {
  struct sock_common *sk = ctx->sk_common;
  if (!sk)
    return 0;
  return destroy_if_target(ctx->meta, sk);
}

char _license[] SEC("license") = "GPL";
