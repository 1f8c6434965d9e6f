/* The kernel's conntrack and NAT, asked to create an entry (net/netfilter/nf_conntrack_bpf.c,
 * nf_nat_bpf.c; the loader resolves the kfuncs' BTF ids): the stack's nf_nat then translates
 * every packet of the connection, both ways. */
#ifndef TWILL_LIB_NAT_H
#define TWILL_LIB_NAT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct nf_conn;
struct nf_conn___init;
struct bpf_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts *, __u32) __ksym;
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *, struct bpf_sock_tuple *, __u32,
					       struct bpf_ct_opts *, __u32) __ksym;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *) __ksym;
extern int bpf_ct_set_nat_info(struct nf_conn___init *, void *addr /* union nf_inet_addr */, int port /* host order; 0: any */,
			       int manip) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;

#define NAT_MANIP_SRC 0
#define NAT_MANIP_DST 1
#define NAT_CURRENT_NETNS (-1)

#endif
