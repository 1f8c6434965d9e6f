// Kubernetes label selector semantics (apimachinery's LabelSelectorAsSelector): matchLabels
// and every matchExpression must hold; an empty selector matches everything.
import type { Labels, Selector } from './objects.js';

export function matches(s: Selector, l: Labels): boolean {
  for (const [k, v] of Object.entries(s.matchLabels)) if (l[k] !== v) return false;
  for (const r of s.matchExpressions) {
    const has = Object.hasOwn(l, r.key);
    switch (r.operator) {
      case 'In':
        if (!has || !r.values.includes(l[r.key]!)) return false;
        break;
      case 'NotIn':
        if (has && r.values.includes(l[r.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}
