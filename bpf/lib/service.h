/* Service translation: where a Service's address is translated to one of its endpoints
 * (and back, for replies), after the source is validated and before conntrack and policy
 * see the packet. Nothing is translated yet: the stage goes on. */
#ifndef TWILL_LIB_SERVICE_H
#define TWILL_LIB_SERVICE_H

#include "pkt.h"

static __always_inline enum reason translate_service(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *c)
{
	return REASON_CONTINUE;
}

#endif
