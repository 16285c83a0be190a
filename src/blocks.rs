//! Blocks of modalities: which modalities, and which combinations of them, a model weighs
//! (docs/design.md section 8). Shared by the kernel side (MKL over products of centred
//! kernels) and the tensor side (block low-rank fusion).
//!
//! A block is a non-empty set of modalities: one modality (a unimodal block) or two or more
//! (an interaction block). A [`BlockSpec`] says which interaction blocks to add to the
//! unimodal ones: `none`, `pairs` (every pair), `all` (every subset of two or more), or a
//! comma-separated list such as `visual*audio,visual*audio*text`. Names join modality names
//! with `*` in the order the modalities were given, whatever the order in the spec.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Which interaction blocks to add to the unimodal ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockSpec {
    /// No interactions: one block per modality.
    None,
    /// Every pair of modalities.
    Pairs,
    /// Every subset of two or more modalities.
    All,
    /// The listed interactions, each a list of two or more modality names.
    List(Vec<Vec<String>>),
}

impl FromStr for BlockSpec {
    type Err = Error;

    /// `none`, `pairs`, `all`, or `a*b,a*b*c` (whitespace around names is ignored). The list
    /// form is checked for shape here (two or more names per block, no name twice in a block)
    /// and against the modalities by [`BlockSpec::resolve`].
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "none" | "" => return Ok(BlockSpec::None),
            "pairs" => return Ok(BlockSpec::Pairs),
            "all" => return Ok(BlockSpec::All),
            _ => {}
        }
        let mut list = Vec::new();
        for part in t.split(',') {
            let names: Vec<String> = part.split('*').map(|n| n.trim().to_string()).collect();
            if names.iter().any(String::is_empty) {
                return Err(bad(format!("empty modality name in `{}`", part.trim())));
            }
            if names.len() < 2 {
                return Err(bad(format!(
                    "`{}` is a block of one modality; unimodal blocks are always included, \
                     a listed block joins two or more with `*`",
                    part.trim()
                )));
            }
            for (i, n) in names.iter().enumerate() {
                if names[..i].contains(n) {
                    return Err(bad(format!(
                        "modality `{n}` twice in block `{}`",
                        part.trim()
                    )));
                }
            }
            list.push(names);
        }
        Ok(BlockSpec::List(list))
    }
}

impl fmt::Display for BlockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockSpec::None => f.write_str("none"),
            BlockSpec::Pairs => f.write_str("pairs"),
            BlockSpec::All => f.write_str("all"),
            BlockSpec::List(l) => {
                let parts: Vec<String> = l.iter().map(|b| b.join("*")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

fn bad(reason: String) -> Error {
    Error::param("interactions", reason)
}

/// One block: the indices of its modalities (ascending, so in the order they were given) and
/// its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Modality indices, ascending.
    pub members: Vec<usize>,
    /// Modality names joined with `*` in modality order.
    pub name: String,
}

impl Block {
    /// Whether the block is an interaction (two or more modalities).
    pub fn is_interaction(&self) -> bool {
        self.members.len() >= 2
    }
}

/// The most blocks a spec may expand to (`all` over M modalities is 2^M - 1 blocks).
pub const MAX_BLOCKS: usize = 1 << 12;

impl BlockSpec {
    /// The blocks for these modalities, in a fixed order: the unimodal blocks in modality order,
    /// then the interactions by size, and within a size in the lexicographic order of their
    /// member indices (a listed spec keeps that order too, whatever order it was written in).
    ///
    /// ```
    /// use mmfuse::blocks::BlockSpec;
    /// let spec: BlockSpec = "audio*visual".parse()?;
    /// let blocks = spec.resolve(&["visual", "audio", "text"])?;
    /// let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    /// assert_eq!(names, ["visual", "audio", "text", "visual*audio"]);
    /// let all = BlockSpec::All.resolve(&["v", "a", "t"])?;
    /// assert_eq!(all.len(), 7);
    /// assert_eq!(all[6].name, "v*a*t");
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidParameter` for no modalities, a modality name given twice, an unknown modality
    /// in a list, duplicate blocks, or more than [`MAX_BLOCKS`] blocks.
    pub fn resolve(&self, modalities: &[&str]) -> Result<Vec<Block>> {
        let m = modalities.len();
        if m == 0 {
            return Err(bad("no modalities".into()));
        }
        for (i, n) in modalities.iter().enumerate() {
            if modalities[..i].contains(n) {
                return Err(bad(format!("modality `{n}` given twice")));
            }
        }
        let mut sets: Vec<Vec<usize>> = (0..m).map(|i| vec![i]).collect();
        match self {
            BlockSpec::None => {}
            BlockSpec::Pairs => {
                for a in 0..m {
                    for b in a + 1..m {
                        sets.push(vec![a, b]);
                    }
                }
            }
            BlockSpec::All => {
                if m >= 13 {
                    return Err(bad(format!(
                        "`all` over {m} modalities is {} blocks (at most {MAX_BLOCKS})",
                        (1u128 << m) - 1
                    )));
                }
                for mask in 1usize..(1 << m) {
                    if mask.count_ones() >= 2 {
                        sets.push((0..m).filter(|i| mask >> i & 1 == 1).collect());
                    }
                }
            }
            BlockSpec::List(list) => {
                for names in list {
                    let mut idx = Vec::with_capacity(names.len());
                    for n in names {
                        let i = modalities.iter().position(|x| x == n).ok_or_else(|| {
                            bad(format!(
                                "unknown modality `{n}` in block `{}` (the modalities are {})",
                                names.join("*"),
                                modalities.join(", ")
                            ))
                        })?;
                        idx.push(i);
                    }
                    idx.sort_unstable();
                    if sets.contains(&idx) {
                        return Err(bad(format!("block `{}` listed twice", names.join("*"))));
                    }
                    sets.push(idx);
                }
            }
        }
        if sets.len() > MAX_BLOCKS {
            return Err(bad(format!("{} blocks (at most {MAX_BLOCKS})", sets.len())));
        }
        sets.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        Ok(sets
            .into_iter()
            .map(|members| Block {
                name: members
                    .iter()
                    .map(|&i| modalities[i])
                    .collect::<Vec<_>>()
                    .join("*"),
                members,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for s in ["none", "pairs", "all", "a*b", "a*b,b*c*a"] {
            let spec: BlockSpec = s.parse().unwrap();
            assert_eq!(spec.to_string().parse::<BlockSpec>().unwrap(), spec);
        }
        assert_eq!(" PAIRS ".parse::<BlockSpec>().unwrap(), BlockSpec::Pairs);
    }

    #[test]
    fn pairs_and_all() {
        let p = BlockSpec::Pairs.resolve(&["v", "a", "t"]).unwrap();
        let names: Vec<&str> = p.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["v", "a", "t", "v*a", "v*t", "a*t"]);
        let one = BlockSpec::Pairs.resolve(&["v"]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            BlockSpec::All.resolve(&["a", "b", "c", "d"]).unwrap().len(),
            15
        );
    }

    #[test]
    fn bad_specs_are_errors() {
        let mods = ["v", "a", "t"];
        for (spec, needle) in [
            ("v", "block of one"),
            ("v*a,t", "block of one"),
            ("v*v", "twice in block"),
            ("v*", "empty modality"),
            ("v*x", "unknown modality `x`"),
            ("v*a,a*v", "listed twice"),
        ] {
            let e = spec
                .parse::<BlockSpec>()
                .and_then(|s| s.resolve(&mods))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
        assert!(BlockSpec::None.resolve(&[]).is_err());
        assert!(BlockSpec::None.resolve(&["a", "a"]).is_err());
        let many: Vec<String> = (0..13).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(BlockSpec::All.resolve(&refs).is_err());
    }
}
