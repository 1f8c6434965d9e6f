// The network configuration's JSON Schema: the single source of truth for every field,
// its type, its default and its meaning. Compiled to a standalone validator at build time
// (tools/build/gen-validator.mjs) and rendered into docs/config.md.

const NAME = '^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$';
// Absolute, no ".." segment, no control characters.
const ABS_PATH = '^/(?!.*(?:^|/)\\.\\.(?:/|$))[^\\u0000-\\u001f\\u007f]*$';

const ipString = { type: 'string', maxLength: 64, description: 'An IPv4 or IPv6 address.' } as const;
const cidrString = { type: 'string', maxLength: 64, description: 'A CIDR, e.g. 10.22.0.0/16 or fd00:22::/64.' } as const;

const range = {
  type: 'object',
  required: ['subnet'],
  properties: {
    subnet: { ...cidrString, description: 'Subnet to allocate from (host bits must be zero).' },
    rangeStart: { ...ipString, description: 'First allocatable address (default: network + 1).' },
    rangeEnd: { ...ipString, description: 'Last allocatable address (default: broadcast - 1 for IPv4, last address for IPv6).' },
    gateway: { ...ipString, description: 'Gateway the pod routes through (default: network + 1); never allocated.' },
  },
} as const;

const rangeSet = { type: 'array', minItems: 1, maxItems: 64, items: range } as const;

const route = {
  type: 'object',
  required: ['dst'],
  properties: {
    dst: { ...cidrString, description: 'Destination CIDR.' },
    gw: { ...ipString, description: 'Next hop (default: the range set gateway of the same family).' },
  },
} as const;

export const node = {
  type: 'object',
  required: ['name', 'ip', 'podCIDRs'],
  properties: {
    name: { type: 'string', maxLength: 253, pattern: NAME, description: 'Node name.' },
    ip: { ...ipString, description: 'Node (underlay) address: the VTEP or the host-gw next hop.' },
    ip6: { ...ipString, description: 'Optional IPv6 node address, the next hop of IPv6 pod CIDRs in hostgw mode.' },
    podCIDRs: { type: 'array', maxItems: 4, items: cidrString, description: 'Pod CIDRs of the node (IPv4 and/or IPv6).' },
  },
} as const;

export const nodesFileSchema = {
  $id: 'twill-nodes',
  type: 'object',
  required: ['nodes'],
  // Each node is checked on its own (datapath/nodes.ts): one bad entry is skipped and
  // reported, never a reason to drop the whole table.
  properties: { nodes: { type: 'array', maxItems: 200000, items: { type: 'object' } } },
} as const;

const attachment = {
  type: 'object',
  required: ['containerID', 'ifname'],
  properties: { containerID: { type: 'string', maxLength: 253 }, ifname: { type: 'string', maxLength: 64 } },
} as const;

export const schema = {
  $id: 'twill-netconf',
  type: 'object',
  required: ['cniVersion', 'name', 'type'],
  properties: {
    cniVersion: { type: 'string', maxLength: 16, description: 'CNI spec version of this configuration (0.3.0 to 1.1.0).' },
    name: { type: 'string', maxLength: 253, pattern: NAME, description: 'Network name; also the name of the IPAM store directory.' },
    type: { type: 'string', maxLength: 253, description: 'Plugin binary name: "twill".' },
    mtu: { type: 'integer', minimum: 576, maximum: 65535, description: 'MTU of both ends of the pod veth (default: 1500; with vxlan, the underlay MTU minus 50 for IPv4 or 70 for IPv6).' },
    datapath: {
      enum: ['auto', 'ebpf', 'routed'],
      default: 'auto',
      description: 'Pod-to-pod path: "ebpf" (tc fast path, error if unavailable), "routed" (kernel routing only), "auto" (eBPF when the host allows it, else routed).',
    },
    bpffsRoot: { type: 'string', maxLength: 4096, pattern: ABS_PATH, default: '/sys/fs/bpf', description: 'bpffs mount under which twill/<network>/ pins its maps, program and links (mounted if needed).' },
    ebpfAttach: {
      enum: ['auto', 'tcx', 'legacy'],
      default: 'auto',
      description: 'How the tc program is attached: "legacy" clsact + cls_bpf, "tcx" pinned links (kernel 6.6+; each attach waits for an RCU grace period, ~12 ms per ADD measured), "auto" legacy with tcx as fallback. Pods shaped by the bandwidth plugin (or pending, see cniCacheDir) get no program either way.',
    },
    maxEndpoints: { type: 'integer', minimum: 16, maximum: 1048576, default: 1024, description: 'Pod addresses the network\'s endpoint map holds on one node (kubelet\'s default of 110 pods, dual-stack, needs 220). Entries are allocated as pods come (no preallocation); a new size applies once the network\'s last pod on the node is gone and its maps are released.' },
    flowEntries: { type: 'integer', minimum: 0, maximum: 1048576, default: 8192, description: 'Flows the kernel keeps on this node for `twill observe` (an LRU map: first/last seen, packets, bytes, verdict and drop reason per direction of a connection; the oldest go first). 0 keeps none and emits no events. ~150 bytes each, allocated when the network\'s maps are made; a new size applies once they are released.' },
    policy: {
      type: 'object',
      required: ['type'],
      description: 'NetworkPolicy enforcement (the key Calico\'s CNI config uses). With "type": "k8s" every pod of the network is judged by the policies `twill sync` last computed, in eBPF (the eBPF data path is then required: ADD and STATUS fail where it cannot run). A pod the last sync did not know (by CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME) is read from the API server (kubeconfig) or starts isolated until a sync knows it. Without this key nothing is enforced.',
      properties: {
        type: { enum: ['k8s'], description: '"k8s": networking.k8s.io/v1 NetworkPolicy.' },
        kubeconfig: { type: 'string', maxLength: 4096, pattern: ABS_PATH, description: 'Kubeconfig ADD uses to read a pod the last sync did not know, with its namespace and that namespace\'s NetworkPolicies (3 s at most); without it, or when that fails, the pod starts isolated until a sync knows it.' },
        ipcacheEntries: { type: 'integer', minimum: 256, maximum: 4194304, default: 524288, description: 'Addresses the ipcache trie holds (every pod of the cluster, this node\'s addresses, ipBlock prefixes). The default holds a whole cluster of Kubernetes\' supported size (150,000 pods, dual stack, 5,000 nodes). Allocated as used (no preallocation): the kernel charges for the entries written, not for this bound.' },
        policyEntries: { type: 'integer', minimum: 256, maximum: 4194304, default: 262144, description: 'Entries of the policy trie: (group of local pods selected by the same policies, direction, peer identity or class, protocol, port block) allowances. They grow with what the policies say about this node\'s pods, not with the cluster\'s pods (docs/policy-scale.md). Allocated as used.' },
      },
    },
    services: {
      type: 'object',
      required: ['type'],
      description: 'Kubernetes Services without kube-proxy (as `policy` does for NetworkPolicy). With "type": "k8s" the node\'s socket-level Service translation is loaded once per node and attached to cgroupRoot (cgroup connect, sendmsg, recvmsg and getpeername hooks, IPv4 and IPv6): a connection or datagram to a Service address goes to one of its endpoints, as `twill sync` last computed them. Without this key nothing is translated.',
      properties: {
        type: { enum: ['k8s'], description: '"k8s": v1 Service and discovery.k8s.io/v1 EndpointSlice.' },
        devices: {
          type: 'array', maxItems: 64, uniqueItems: true, items: { type: 'string', pattern: '^[a-zA-Z0-9_.-]{1,15}$' },
          description: 'The node\'s devices where traffic from outside arrives for NodePorts, external IPs and load-balancer IPs (translated per packet by a tcx program on each; the kernel\'s conntrack carries the flow). Default: the devices of the default routes and of the node\'s addresses. Attached only while some Service has such a frontend.',
        },
        externalIPs: {
          type: 'array', maxItems: 256, items: cidrString,
          description: 'Where Services\' spec.externalIPs and status.loadBalancer.ingress[].ip may be: when set, only addresses inside these CIDRs are programmed ([] programs none); unset, any address is, as kube-proxy does, except those that are refused whatever this says: another Service\'s ClusterIP, an address of this node (its own ports and NodePorts live there), an endpoint (pod) address of any EndpointSlice, and unspecified, loopback, link-local, multicast or broadcast addresses (a refused one is reported by `twill sync`, never programmed). Whoever may write a Service\'s externalIPs (or its status) can still intercept traffic to any other address it names (CVE-2020-8554): set this, or enable Kubernetes\' DenyServiceExternalIPs admission plugin, the upstream mitigation.',
        },
      },
    },
    cgroupRoot: { type: 'string', maxLength: 4096, pattern: ABS_PATH, description: 'The cgroup v2 directory whose sockets (and its descendants\') the Service translation serves (default: the host\'s cgroup v2 mount, from /proc/self/mountinfo; on hybrid hosts the unified mount, e.g. /sys/fs/cgroup/unified). Nodes simulated on one kernel each get their own directory. Must exist and be on cgroup2.' },
    cniCacheDir: { type: 'string', maxLength: 4096, pattern: ABS_PATH, default: '/var/lib/cni', description: 'libcni\'s cache directory (containerd, CRI-O, podman and cnitool keep each chain\'s result under results/). When twill\'s entry does not declare the bandwidth capability, a pod gets the fast path once its chain\'s result is cached there and its veth shows no shaping.' },
    backend: { enum: ['none', 'vxlan', 'hostgw'], default: 'none', description: 'How pods on other nodes are reached: "none" (single node), "vxlan" (one VXLAN device per network, static FDB and neighbours), "hostgw" (a route per peer pod CIDR via the peer node, which must share the underlay L2).' },
    vxlan: {
      type: 'object',
      default: {},
      description: 'VXLAN backend settings.',
      properties: {
        vni: { type: 'integer', minimum: 1, maximum: 16777215, default: 1, description: 'VXLAN network identifier.' },
        port: { type: 'integer', minimum: 1, maximum: 65535, default: 4789, description: 'UDP destination port.' },
        device: { type: 'string', pattern: '^[a-zA-Z0-9_.-]{1,15}$', description: 'Device name (default: twill.<vni>).' },
        txChecksumOffload: {
          enum: ['auto', 'on', 'off'],
          default: 'auto',
          description: 'TX checksum offload on the VXLAN device. "auto" turns it off on kernels before 5.7, whose NAT corrupts the checksums of VXLAN packets (the 63-second stalls of flannel and Calico clusters), and leaves it on elsewhere: off costs ~4x in throughput.',
        },
      },
    },
    nodeName: { type: 'string', maxLength: 253, pattern: NAME, description: 'This node\'s name in the node table (default: the node whose IP is on a local interface).' },
    nodes: { type: 'array', maxItems: 200000, items: node, description: 'The node table: every node of the cluster, this one included.' },
    nodesFile: { type: 'string', maxLength: 4096, pattern: ABS_PATH, description: 'A JSON file {"nodes": [...]} kept current by config management or `twill sync`; used when nodes is absent.' },
    clusterCIDRs: { type: 'array', maxItems: 16, items: cidrString, description: 'Destinations not masqueraded by ipMasq (default: every node\'s pod CIDRs).' },
    hostVethPrefix: {
      type: 'string',
      pattern: '^[a-z][a-z0-9]{0,3}$',
      default: 'tw',
      description: 'Prefix of host-side veth names: prefix + the first (15 - prefix length) hex digits of FNV-1a-64("containerID:ifname").',
    },
    logFile: { type: 'string', maxLength: 4096, pattern: ABS_PATH, description: 'Append JSON-line logs to this absolute path (symlinks are not followed).' },
    logLevel: { enum: ['debug', 'info', 'warn', 'error'], default: 'info', description: 'Threshold for the log file; stderr gets warnings and errors only unless this is "debug".' },
    stateDir: { type: 'string', maxLength: 4096, pattern: ABS_PATH, default: '/var/lib/twill', description: 'Where twill keeps its own per-network state.' },
    ipMasq: { type: 'boolean', default: false, description: 'Masquerade traffic from this node\'s pod CIDRs to destinations outside clusterCIDRs: one nftables (else iptables) rule set per network, removed with the last pod.' },
    ipam: {
      type: 'object',
      required: ['type'],
      description: 'Address management. "host-local" is served in-process; any other type is executed from CNI_PATH.',
      properties: {
        type: { type: 'string', maxLength: 253, pattern: NAME, description: 'IPAM plugin type.' },
        ranges: { type: 'array', minItems: 1, maxItems: 16, items: rangeSet, description: 'Range sets; each yields one address (one v4 set + one v6 set = dual-stack).' },
        subnet: { ...cidrString, description: 'Legacy single range (prepended as range set 0).' },
        rangeStart: ipString,
        rangeEnd: ipString,
        gateway: ipString,
        routes: { type: 'array', maxItems: 256, items: route, description: 'Routes installed in the pod.' },
        dataDir: { type: 'string', maxLength: 4096, pattern: ABS_PATH, default: '/var/lib/cni/networks', description: 'Base directory of the host-local store.' },
        resolvConf: { type: 'string', maxLength: 4096, pattern: ABS_PATH, description: 'resolv.conf to report as the result\'s dns.' },
      },
    },
    dns: {
      type: 'object',
      description: 'DNS settings passed through to the result.',
      properties: {
        nameservers: { type: 'array', maxItems: 16, items: ipString },
        domain: { type: 'string', maxLength: 253 },
        search: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 253 } },
        options: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 253 } },
      },
    },
    capabilities: { type: 'object', additionalProperties: { type: 'boolean' }, description: 'Capabilities the runtime may fill into runtimeConfig (ips, portMappings, bandwidth).' },
    runtimeConfig: {
      type: 'object',
      description: 'Filled in by the runtime from the declared capabilities.',
      properties: {
        ips: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 64 } },
        ipRanges: { type: 'array', maxItems: 16, items: rangeSet },
        bandwidth: {
          type: 'object',
          description: 'The pod\'s limits (bits per second; bursts in bits), from the kubernetes.io/ingress-bandwidth and egress-bandwidth annotations.',
          properties: {
            ingressRate: { type: 'number', minimum: 0 },
            ingressBurst: { type: 'number', minimum: 0 },
            egressRate: { type: 'number', minimum: 0 },
            egressBurst: { type: 'number', minimum: 0 },
          },
        },
        portMappings: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              hostPort: { type: 'integer' },
              containerPort: { type: 'integer' },
              protocol: { type: 'string', maxLength: 16 },
              hostIP: { type: 'string', maxLength: 64 },
            },
          },
        },
      },
    },
    args: {
      type: 'object',
      properties: {
        cni: { type: 'object', properties: { ips: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 64 } } } },
      },
    },
    prevResult: { type: 'object', description: 'Result of the previous plugin (chaining) or of ADD (CHECK, DEL).' },
    'cni.dev/valid-attachments': { type: 'array', items: attachment, description: 'GC: attachments still in use.' },
    'cni.dev/attachments': { type: 'array', items: attachment, description: 'GC: older spelling of cni.dev/valid-attachments.' },
  },
} as const;
