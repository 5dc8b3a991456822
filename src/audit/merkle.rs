//! RFC 9162 Merkle tree: hashing, a streaming frontier, proof making over a node lookup, and
//! proof checking (ct-merkle's, with SHA-256 from ring). Pure: never touches storage.
//! Invariant: leaf = SHA-256(0x00 || bytes), node = SHA-256(0x01 || left || right).

use ct_merkle::digest;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use ring::digest::{Context, SHA256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Why a proof cannot be made or does not check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("sizes out of range: {index} of {size}")]
    OutOfRange { index: u64, size: u64 },
    #[error("the proof does not check")]
    Invalid,
}

/// RFC 9162 leaf hash: SHA-256(0x00 || bytes).
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(bytes);
    finish(ctx)
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&SHA256, &buf).as_ref());
    out
}

/// Root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The roots of the complete subtrees that make up a tree of `size` leaves, largest first
/// (one per set bit of `size`). Enough to append in O(log n) and to give the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

/// A complete subtree: `level` (0 = leaf) and its index among the subtrees of that level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from its complete subtrees.
    pub fn load<E>(size: u64, mut node: impl FnMut(NodeId) -> Result<Hash, E>) -> Result<Self, E> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1u64 << level) != 0 {
                hashes.push(node(NodeId {
                    level,
                    index: start >> level,
                })?);
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; `completed` sees every complete subtree this append closes,
    /// the leaf itself first.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        let mut hash = leaf;
        let mut id = NodeId {
            level: 0,
            index: self.size,
        };
        completed(id, &hash);
        while id.index & 1 == 1 {
            let Some(left) = self.hashes.pop() else { break };
            hash = node_hash(&left, &hash);
            id = NodeId {
                level: id.level + 1,
                index: id.index >> 1,
            };
            completed(id, &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// The root of the tree so far (RFC 9162 MTH).
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// MTH of leaves `[start, end)`, where `start` is a multiple of the largest power of two below
/// `end - start` (true for every range the RFC recursion visits). O(log n) lookups.
pub fn subtree_root<E>(
    start: u64,
    end: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let n = end.saturating_sub(start);
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start % n == 0 {
        let level = n.trailing_zeros() as u8;
        return node(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    let left = subtree_root(start, start + k, node)?;
    let right = subtree_root(start + k, end, node)?;
    Ok(node_hash(&left, &right))
}

/// The leaf range `[start, end)` of ct-merkle's array index `i` in a tree of `size` leaves.
fn array_range(i: u64, size: u64) -> (u64, u64) {
    let level = i.trailing_ones();
    let start = (i >> (level + 1)) << level;
    (start, (start + (1u64 << level)).min(size))
}

fn hashes_at<E>(
    indices: Vec<u64>,
    size: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    indices
        .into_iter()
        .map(|i| {
            let (start, end) = array_range(i, size);
            subtree_root(start, end, node)
        })
        .collect()
}

/// RFC 9162 inclusion proof (audit path) of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<E: From<ProofError>>(
    index: u64,
    size: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    if index >= size || size > u64::MAX / 2 {
        return Err(ProofError::OutOfRange { index, size }.into());
    }
    hashes_at(
        ct_merkle::indices_for_inclusion_proof(size, index),
        size,
        node,
    )
}

/// RFC 9162 consistency proof from `old_size` to `new_size` (empty if `old_size` is 0 or equal).
pub fn consistency_proof<E: From<ProofError>>(
    old_size: u64,
    new_size: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    if old_size > new_size || new_size > u64::MAX / 2 {
        return Err(ProofError::OutOfRange {
            index: old_size,
            size: new_size,
        }
        .into());
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let indices = ct_merkle::indices_for_consistency_proof(old_size, new_size - old_size);
    hashes_at(indices, new_size, node)
}

/// ring's SHA-256 behind the `digest` traits, so ct-merkle checks proofs with ring.
#[derive(Clone)]
pub struct RingSha256(Context);

impl Default for RingSha256 {
    fn default() -> Self {
        RingSha256(Context::new(&SHA256))
    }
}

impl digest::HashMarker for RingSha256 {}

impl digest::OutputSizeUser for RingSha256 {
    type OutputSize = digest::consts::U32;
}

impl digest::Update for RingSha256 {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

impl digest::FixedOutput for RingSha256 {
    fn finalize_into(self, out: &mut digest::Output<Self>) {
        out.copy_from_slice(self.0.finish().as_ref());
    }
}

fn root_hash(root: &Hash, size: u64) -> RootHash<RingSha256> {
    RootHash::new((*root).into(), size)
}

/// Checks that `leaf_bytes` (the canonical entry bytes) is leaf `index` of the tree of `size`
/// leaves with `root`.
pub fn verify_inclusion(
    leaf_bytes: &[u8],
    index: u64,
    size: u64,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if index >= size || size > u64::MAX / 2 {
        return Err(ProofError::OutOfRange { index, size });
    }
    let proof = InclusionProof::<RingSha256>::try_from_bytes(proof.concat())
        .map_err(|_| ProofError::Invalid)?;
    root_hash(root, size)
        .verify_inclusion(&leaf_bytes, index, &proof)
        .map_err(|_| ProofError::Invalid)
}

/// Checks that the tree (`old_size`, `old_root`) is a prefix of (`new_size`, `new_root`).
/// Every tree extends the empty one; equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size || new_size > u64::MAX / 2 {
        return Err(ProofError::OutOfRange {
            index: old_size,
            size: new_size,
        });
    }
    if old_size == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Invalid)
        };
    }
    let proof = ConsistencyProof::<RingSha256>::try_from_bytes(proof.concat())
        .map_err(|_| ProofError::Invalid)?;
    root_hash(new_root, new_size)
        .verify_consistency(&root_hash(old_root, old_size), &proof)
        .map_err(|_| ProofError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::convert::Infallible;

    fn h(s: &str) -> Hash {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// The leaf inputs of the RFC 6962 test vectors (certificate-transparency, transparency-dev/merkle).
    fn rfc_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| {
            (0..s.len() / 2)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
    }

    const RFC_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// An in-memory node store filled by a frontier, as the sled store is.
    struct Mem {
        frontier: Frontier,
        nodes: HashMap<(u8, u64), Hash>,
        leaves: Vec<Vec<u8>>,
    }

    impl Mem {
        fn new(leaves: &[Vec<u8>]) -> Mem {
            let mut m = Mem {
                frontier: Frontier::default(),
                nodes: HashMap::new(),
                leaves: Vec::new(),
            };
            for l in leaves {
                m.push(l.clone());
            }
            m
        }
        fn push(&mut self, leaf: Vec<u8>) {
            let nodes = &mut self.nodes;
            self.frontier.push(leaf_hash(&leaf), |id, hash| {
                nodes.insert((id.level, id.index), *hash);
            });
            self.leaves.push(leaf);
        }
        fn lookup(&self) -> impl FnMut(NodeId) -> Result<Hash, ProofError> + '_ {
            |id| {
                self.nodes
                    .get(&(id.level, id.index))
                    .copied()
                    .ok_or(ProofError::Invalid)
            }
        }
        fn root(&self, size: u64) -> Hash {
            subtree_root(0, size, &mut self.lookup()).expect("root")
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(Frontier::default().root(), empty_root());
    }

    #[test]
    fn rfc_roots_for_every_size() {
        let leaves = rfc_leaves();
        let mut m = Mem::new(&[]);
        for (i, l) in leaves.iter().enumerate() {
            m.push(l.clone());
            assert_eq!(
                m.frontier.root(),
                h(RFC_ROOTS[i]),
                "frontier root at size {}",
                i + 1
            );
            assert_eq!(
                m.root(i as u64 + 1),
                h(RFC_ROOTS[i]),
                "stored root at size {}",
                i + 1
            );
        }
        for size in 0..=8u64 {
            let loaded = Frontier::load(size, m.lookup()).expect("load");
            assert_eq!(loaded.size(), size);
            let want = if size == 0 {
                empty_root()
            } else {
                h(RFC_ROOTS[size as usize - 1])
            };
            assert_eq!(loaded.root(), want);
        }
    }

    #[test]
    fn rfc_inclusion_vectors() {
        let m = Mem::new(&rfc_leaves());
        let cases: [(u64, u64, &[&str]); 5] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (0, 1, &[]),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let got = inclusion_proof(index, size, &mut m.lookup()).expect("proof");
            assert_eq!(got, want, "inclusion {index} of {size}");
            let root = h(RFC_ROOTS[size as usize - 1]);
            verify_inclusion(&m.leaves[index as usize], index, size, &root, &got)
                .expect("verifies");
        }
    }

    #[test]
    fn rfc_consistency_vectors() {
        let m = Mem::new(&rfc_leaves());
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, new, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let got = consistency_proof(old, new, &mut m.lookup()).expect("proof");
            assert_eq!(got, want, "consistency {old} -> {new}");
            let (r1, r2) = (
                h(RFC_ROOTS[old as usize - 1]),
                h(RFC_ROOTS[new as usize - 1]),
            );
            verify_consistency(old, new, &r1, &r2, &got).expect("verifies");
        }
    }

    #[test]
    fn all_proofs_up_to_64_verify() {
        let leaves: Vec<Vec<u8>> = (0u32..64).map(|i| i.to_be_bytes().to_vec()).collect();
        let m = Mem::new(&leaves);
        for n in 1..=64u64 {
            let root = m.root(n);
            for i in 0..n {
                let p = inclusion_proof(i, n, &mut m.lookup()).expect("inclusion");
                verify_inclusion(&leaves[i as usize], i, n, &root, &p).expect("inclusion verifies");
            }
            for old in 0..=n {
                let p = consistency_proof(old, n, &mut m.lookup()).expect("consistency");
                verify_consistency(old, n, &m.root(old), &root, &p).expect("consistency verifies");
            }
        }
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        let m = Mem::new(&rfc_leaves());
        assert!(inclusion_proof(8, 8, &mut m.lookup()).is_err());
        assert!(inclusion_proof(0, 0, &mut m.lookup()).is_err());
        assert!(consistency_proof(5, 4, &mut m.lookup()).is_err());
        let r = h(RFC_ROOTS[0]);
        assert!(verify_inclusion(b"", 0, 0, &r, &[]).is_err());
        assert!(verify_consistency(2, 1, &r, &r, &[]).is_err());
        assert!(verify_consistency(0, 1, &r, &r, &[r]).is_err());
        assert!(verify_consistency(1, 1, &r, &h(RFC_ROOTS[1]), &[]).is_err());
        let _: Result<Frontier, Infallible> = Frontier::load(0, |_| Ok([0; 32]));
    }

    proptest! {
        #[test]
        fn tampered_inclusion_fails(n in 1u64..=64, i in 0u64..64, at in 0usize..8, bit in 0u8..8, which in 0u8..4) {
            let i = i % n;
            let leaves: Vec<Vec<u8>> = (0u32..n as u32).map(|k| k.to_le_bytes().to_vec()).collect();
            let m = Mem::new(&leaves);
            let root = m.root(n);
            let mut proof = inclusion_proof(i, n, &mut m.lookup()).expect("proof");
            let mut leaf = leaves[i as usize].clone();
            let mut root2 = root;
            let mut index = i;
            match which {
                0 if !proof.is_empty() => { let k = at % proof.len(); proof[k][bit as usize % 32] ^= 1 << bit; }
                1 => leaf.push(bit),
                2 => root2[at % 32] ^= 1 << bit,
                _ => { index = (i + 1 + u64::from(bit)) % n; if index == i { return Ok(()); } }
            }
            if which == 0 && proof.is_empty() { leaf.push(1); }
            prop_assert!(verify_inclusion(&leaf, index, n, &root2, &proof).is_err());
        }

        #[test]
        fn tampered_consistency_fails(n in 2u64..=64, old in 1u64..64, at in 0usize..8, bit in 0u8..8, which in 0u8..3) {
            let old = 1 + old % (n - 1);
            let leaves: Vec<Vec<u8>> = (0u32..n as u32).map(|k| k.to_le_bytes().to_vec()).collect();
            let m = Mem::new(&leaves);
            let (r_old, r_new) = (m.root(old), m.root(n));
            let mut proof = consistency_proof(old, n, &mut m.lookup()).expect("proof");
            prop_assert!(verify_consistency(old, n, &r_old, &r_new, &proof).is_ok());
            let (mut a, mut b) = (r_old, r_new);
            match which {
                0 => { let k = at % proof.len(); proof[k][bit as usize % 32] ^= 1 << bit; }
                1 => a[at % 32] ^= 1 << bit,
                _ => b[at % 32] ^= 1 << bit,
            }
            prop_assert!(verify_consistency(old, n, &a, &b, &proof).is_err());
        }

        #[test]
        fn a_changed_leaf_breaks_consistency(n in 2u64..=64, old in 1u64..64, changed in 0u64..64) {
            let old = 1 + old % (n - 1);
            let changed = changed % old;
            let leaves: Vec<Vec<u8>> = (0u32..n as u32).map(|k| k.to_le_bytes().to_vec()).collect();
            let honest = Mem::new(&leaves);
            let mut forged_leaves = leaves.clone();
            forged_leaves[changed as usize].push(0xff);
            let forged = Mem::new(&forged_leaves);
            let proof = consistency_proof(old, n, &mut forged.lookup()).expect("proof");
            prop_assert!(verify_consistency(old, n, &honest.root(old), &forged.root(n), &proof).is_err());
        }
    }
}
