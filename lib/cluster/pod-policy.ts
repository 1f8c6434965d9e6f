// What ADD reads from the API server about a pod the last policy sync did not know: the pod,
// its namespace and that namespace's NetworkPolicies (the only ones that can select it).
import { addObjects, emptyCluster, type ClusterObjects } from '../policy/objects.js';
import { getObject, kubeconfigAccess } from './k8s.js';

const TIMEOUT_MS = 3000;

export async function fetchPodPolicyObjects(kubeconfig: string, pod: { namespace: string; name: string }): Promise<ClusterObjects> {
  const access = await kubeconfigAccess(kubeconfig);
  const ns = encodeURIComponent(pod.namespace);
  const [p, n, pols] = await Promise.all([
    getObject(access, `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod.name)}`, TIMEOUT_MS),
    getObject(access, `/api/v1/namespaces/${ns}`, TIMEOUT_MS),
    getObject(access, `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`, TIMEOUT_MS),
  ]);
  const objects = emptyCluster();
  addObjects(objects, [{ ...n, kind: 'Namespace' }, { ...p, kind: 'Pod' }, ...(Array.isArray(pols.items) ? pols.items : []).map((i) => ({ ...(i as object), kind: 'NetworkPolicy' }))]);
  return objects;
}
