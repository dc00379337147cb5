//! Prefix-tree packing: many sequences that share prefixes run as a few tree rows, each shared
//! prefix computed once.
//!
//! Scoring a sequence needs the hidden state of every token but the last (the last token is only
//! a target). Minimal pairs and template data sets share long prefixes, so the inputs are sorted,
//! merged into prefix trees (a new sequence adds only the tokens after its longest common prefix
//! with the previous one), and the trees are laid out one per row of a
//! [`TokenBatch::tree`](crate::TokenBatch::tree): every token takes its depth as position and
//! attends only to its ancestors, which gives each sequence exactly the computation it would get
//! alone (up to float rounding).
//!
//! ```
//! use negdiff_model::packing::pack_prefix_trees;
//!
//! # fn main() -> Result<(), negdiff_model::ModelError> {
//! let seqs = vec![vec![1, 5, 6, 7], vec![1, 5, 6, 8, 9], vec![1, 5, 2]];
//! let packed = pack_prefix_trees(&seqs, 64, 2048)?;
//! assert_eq!(packed.len(), 1);
//! // Inputs (all but the last token) [1 5 6], [1 5 6 8], [1 5]: nine tokens, one tree 1-5-6-8.
//! assert_eq!(packed[0].batch.n_tokens(), 4);
//! # Ok(())
//! # }
//! ```

use crate::batch::{TokenBatch, TreeRow};
use crate::error::Result;

/// Default cap on the tokens of one tree row.
pub const DEFAULT_ROW_TOKENS: usize = 128;

/// One sequence's place in a [`PackedBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedSequence {
    /// Index of the sequence in the list given to [`pack_prefix_trees`].
    pub index: usize,
    /// Flat position (`row · seq_len + pos`) of each of its input tokens (all but the last).
    pub nodes: Vec<usize>,
    /// The token each input predicts: the sequence without its first token.
    pub targets: Vec<u32>,
}

/// A batch of tree rows and the sequences it scores.
#[derive(Debug, Clone)]
pub struct PackedBatch {
    /// The rows to run.
    pub batch: TokenBatch,
    /// The sequences whose tokens lie in them.
    pub members: Vec<PackedSequence>,
}

struct RowBuilder {
    row: TreeRow,
    /// `(sequence index, local node of each input, targets)`.
    members: Vec<(usize, Vec<usize>, Vec<u32>)>,
}

/// Packs `seqs` into prefix-tree rows of at most `row_tokens` tokens (a longer sequence gets a
/// row of its own) and those rows into batches of at most `batch_tokens` padded tokens.
///
/// Sequences with fewer than two tokens have nothing to score and appear in no batch. The result
/// depends only on `seqs` (sorted, ties by index), so the same list always packs the same way.
pub fn pack_prefix_trees(
    seqs: &[Vec<u32>],
    row_tokens: usize,
    batch_tokens: usize,
) -> Result<Vec<PackedBatch>> {
    let row_tokens = row_tokens.max(1);
    let input = |i: usize| &seqs[i][..seqs[i].len() - 1];
    let mut order: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].len() >= 2).collect();
    order.sort_by(|&a, &b| input(a).cmp(input(b)).then(a.cmp(&b)));

    let mut rows: Vec<RowBuilder> = Vec::new();
    let mut current = RowBuilder::empty();
    let mut path: Vec<usize> = Vec::new(); // nodes of the previous sequence's inputs
    let mut prev: &[u32] = &[];
    for &i in &order {
        let inp = input(i);
        let mut shared = inp.iter().zip(prev).take_while(|(a, b)| a == b).count();
        if !current.row.tokens.is_empty()
            && current.row.tokens.len() + inp.len() - shared > row_tokens
        {
            rows.push(std::mem::replace(&mut current, RowBuilder::empty()));
            path.clear();
            shared = 0;
        }
        path.truncate(shared);
        for &tok in &inp[shared..] {
            current.row.parents.push(path.last().copied());
            current.row.tokens.push(tok);
            path.push(current.row.tokens.len() - 1);
        }
        current
            .members
            .push((i, path.clone(), seqs[i][1..].to_vec()));
        prev = inp;
    }
    if !current.row.tokens.is_empty() {
        rows.push(current);
    }

    let mut batches = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        let mut longest = rows[start].row.tokens.len();
        while end < rows.len() {
            let l = longest.max(rows[end].row.tokens.len());
            if l * (end + 1 - start) > batch_tokens {
                break;
            }
            longest = l;
            end += 1;
        }
        let mut members = Vec::new();
        let mut tree_rows = Vec::with_capacity(end - start);
        for (r, builder) in rows[start..end].iter_mut().enumerate() {
            for (index, local, targets) in builder.members.drain(..) {
                members.push(PackedSequence {
                    index,
                    nodes: local.iter().map(|&p| r * longest + p).collect(),
                    targets,
                });
            }
            tree_rows.push(std::mem::replace(&mut builder.row, TreeRow::empty()));
        }
        batches.push(PackedBatch {
            batch: TokenBatch::tree(tree_rows)?,
            members,
        });
        start = end;
    }
    Ok(batches)
}

impl RowBuilder {
    fn empty() -> Self {
        RowBuilder {
            row: TreeRow::empty(),
            members: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prefixes_are_stored_once_and_paths_rebuild_each_input() {
        let seqs = vec![
            vec![1, 2, 3, 4],
            vec![1, 2, 9],
            vec![7],
            vec![1, 2, 3, 5],
            vec![8, 8, 8, 8, 8, 8],
        ];
        let packed = pack_prefix_trees(&seqs, 6, 100).unwrap();
        let mut seen = vec![false; seqs.len()];
        for p in &packed {
            let t = p.batch.seq_len();
            let positions = p.batch.positions();
            for m in &p.members {
                seen[m.index] = true;
                let s = &seqs[m.index];
                assert_eq!(m.targets, s[1..]);
                for (k, &node) in m.nodes.iter().enumerate() {
                    let (row, pos) = (node / t, node % t);
                    assert_eq!(p.batch.sequences()[row][pos], s[k]);
                    assert_eq!(positions[row][pos], k, "depth is the position");
                }
            }
        }
        assert_eq!(seen, [true, true, false, true, true]);
        // 1 2 3 (shared by three) + 8×5 would not fit one row of 6.
        let total: usize = packed.iter().map(|p| p.batch.n_tokens()).sum();
        assert_eq!(total, 3 + 5);
    }

    #[test]
    fn rows_respect_the_caps() {
        let seqs: Vec<Vec<u32>> = (0..50u32).map(|i| vec![i, i + 1, i + 2, i + 3]).collect();
        let packed = pack_prefix_trees(&seqs, 8, 16).unwrap();
        for p in &packed {
            assert!(p.batch.sequences().iter().all(|r| r.len() <= 8));
            assert!(p.batch.len() * p.batch.seq_len() <= 16);
        }
        let n: usize = packed.iter().map(|p| p.members.len()).sum();
        assert_eq!(n, 50);
    }
}
