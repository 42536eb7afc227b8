/**
 * @module util/linalg
 * Small dense linear algebra in float64 for the server side of federated aggregation: the leading
 * k singular triplets of a row-major matrix, from the cyclic Jacobi eigen-decomposition of its
 * smaller Gram matrix. The matrices here are adapter updates of one layer (at most a few hundred
 * on a side), so an O(n³) method written out plainly is fast enough and easy to check.
 */

/** Eigen-decomposition of a symmetric n×n matrix (row-major; not modified): values descending, vectors as columns of `vectors` (row-major n×n). */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== n * n) throw new Error(`symmetricEigen: ${a.length} entries for a ${n}x${n} matrix`);
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const offNorm = () => {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) s += m[i * n + j]! ** 2;
    return s;
  };
  let total = 0;
  for (let i = 0; i < n * n; i++) total += m[i]! ** 2;
  for (let sweep = 0; sweep < 100 && offNorm() > 1e-30 * Math.max(total, 1e-300); sweep++) {
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        // Rotation that zeroes m[p][q] (Golub & Van Loan, symmetric Schur decomposition).
        const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!;
          const mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!;
          const mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y]! - m[x * n + x]!);
  const values = Float64Array.from(order, (i) => m[i * n + i]!);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src]!;
  });
  return { values, vectors };
}

/**
 * The k leading singular triplets of a rows×cols matrix `a` (row-major): `u` rows×k (orthonormal
 * columns), `s` k values descending, `vt` k×cols (orthonormal rows), so u·diag(s)·vt is the best
 * rank-k approximation of `a` (Eckart–Young). Singular values too small to resolve come out as 0
 * with zero vectors.
 */
export function truncatedSvd(a: ArrayLike<number>, rows: number, cols: number, k: number): { u: Float64Array; s: Float64Array; vt: Float64Array } {
  if (a.length !== rows * cols) throw new Error(`truncatedSvd: ${a.length} entries for a ${rows}x${cols} matrix`);
  if (!(Number.isInteger(k) && k >= 0 && k <= Math.min(rows, cols))) throw new Error(`truncatedSvd: rank ${k} is not in 0..${Math.min(rows, cols)}`);
  // Work with the smaller Gram matrix: G = AᵀA (cols×cols) when cols <= rows, else AAᵀ.
  const small = Math.min(rows, cols);
  const byCols = cols <= rows;
  const g = new Float64Array(small * small);
  for (let i = 0; i < small; i++) {
    for (let j = i; j < small; j++) {
      let sum = 0;
      if (byCols) for (let r = 0; r < rows; r++) sum += a[r * cols + i]! * a[r * cols + j]!;
      else for (let c = 0; c < cols; c++) sum += a[i * cols + c]! * a[j * cols + c]!;
      g[i * small + j] = sum;
      g[j * small + i] = sum;
    }
  }
  const { values, vectors } = symmetricEigen(g, small);
  const u = new Float64Array(rows * k);
  const s = new Float64Array(k);
  const vt = new Float64Array(k * cols);
  const tiny = 1e-12 * Math.sqrt(Math.max(values[0] ?? 0, 0));
  for (let j = 0; j < k; j++) {
    const sigma = Math.sqrt(Math.max(values[j]!, 0));
    if (!(sigma > tiny)) continue;
    s[j] = sigma;
    if (byCols) {
      // v_j is the eigenvector; u_j = A v_j / σ_j.
      for (let c = 0; c < cols; c++) vt[j * cols + c] = vectors[c * small + j]!;
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        for (let c = 0; c < cols; c++) sum += a[r * cols + c]! * vt[j * cols + c]!;
        u[r * k + j] = sum / sigma;
      }
    } else {
      // u_j is the eigenvector; v_j = Aᵀ u_j / σ_j.
      for (let r = 0; r < rows; r++) u[r * k + j] = vectors[r * small + j]!;
      for (let c = 0; c < cols; c++) {
        let sum = 0;
        for (let r = 0; r < rows; r++) sum += a[r * cols + c]! * u[r * k + j]!;
        vt[j * cols + c] = sum / sigma;
      }
    }
  }
  return { u, s, vt };
}
