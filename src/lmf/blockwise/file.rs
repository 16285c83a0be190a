//! The block model's weights file: one safetensors file (docs/design.md section 9).
//!
//! Tensors, in the model's element type (F32 or F64; either is read into either):
//! - `<m>.<m>` for the unimodal block of modality `m`: `(d_m, h)`;
//! - `<block>.<m>` for member `m` of an interaction block (named `a*b`, ...): `(r, d_m, h)`,
//!   `[i][a][k]` = rank `i`, feature `a`, output `k`;
//! - `<block>.fusion_weights`: `(r)`; `bias`: `(h)`;
//! - `stats.<m>.mean`: `(d_m)`, `stats.<m>.scale`: `(1)`: inputs are used as
//!   `(x - mean) / scale`.
//!
//! Metadata: one entry, [`METADATA_KEY`] (`"mmfuse_block_lmf"`), a JSON object:
//! `{"format": "mmfuse-block-lmf", "version": 1, "modalities": [...], "dims": [...],
//! "blocks": [...], "rank": r, "out_dim": h, "p": "1", "dtype": "f32"}` (p as
//! [`crate::mkl::p_label`] writes it; `stats_fitted`, optional, false for a model saved before
//! training). One entry because the safetensors crate writes its metadata map in hash order.
//! Plain LMF files (metadata `modalities`, PyTorch's layout) are a different format:
//! [`is_block_model_file`] tells them apart.

use super::model::{check_p, BlockLmf};
use super::stats::ModalityStats;
use crate::blocks::BlockSpec;
use crate::error::{Error, Result};
use crate::io::write_atomic_bytes;
use crate::mkl::{p_label, parse_p};
use crate::scalar::Real;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The metadata key of a block model file.
pub const METADATA_KEY: &str = "mmfuse_block_lmf";
/// The `format` field.
pub const FORMAT: &str = "mmfuse-block-lmf";
/// The version of the layout described here.
pub const FORMAT_VERSION: u64 = 1;

/// Whether `bytes` are a safetensors file with block model metadata (false for plain LMF
/// files, other files and garbage).
pub fn is_block_model_file(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, h)| h.metadata().as_ref().map(|m| m.contains_key(METADATA_KEY)))
        .unwrap_or(false)
}

fn to_bytes_le<T: Real>(v: &[T]) -> Vec<u8> {
    if std::mem::size_of::<T>() == 4 {
        v.iter()
            .flat_map(|x| (x.to_f64() as f32).to_le_bytes())
            .collect()
    } else {
        v.iter().flat_map(|x| x.to_f64().to_le_bytes()).collect()
    }
}

impl<T: Real> BlockLmf<T> {
    /// The tensors of the file, by name, with shapes and values (see the module docs).
    fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<T>)> {
        let (r, h) = (self.rank(), self.out_dim());
        let mut out = Vec::new();
        for (b, block) in self.blocks().iter().enumerate() {
            for (j, &m) in block.members.iter().enumerate() {
                let d = self.dims()[m];
                let shape = if block.is_interaction() {
                    vec![r, d, h]
                } else {
                    vec![d, h]
                };
                let values = self
                    .factor_indices(b, j)
                    .into_iter()
                    .map(|i| self.params[i])
                    .collect();
                out.push((format!("{}.{}", block.name, self.names[m]), shape, values));
            }
            if let Some(wr) = self.layout.w_range(b) {
                out.push((
                    format!("{}.fusion_weights", block.name),
                    vec![r],
                    self.params[wr].to_vec(),
                ));
            }
        }
        out.push(("bias".into(), vec![h], self.bias().to_vec()));
        for (name, s) in self.names.iter().zip(&self.stats) {
            out.push((
                format!("stats.{name}.mean"),
                vec![s.mean.len()],
                s.mean.clone(),
            ));
            out.push((format!("stats.{name}.scale"), vec![1], vec![s.scale]));
        }
        out
    }

    /// The model as the bytes of its file; the same model always gives the same bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let dtype = if std::mem::size_of::<T>() == 4 {
            Dtype::F32
        } else {
            Dtype::F64
        };
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .named_tensors()
            .into_iter()
            .map(|(n, s, v)| (n, s, to_bytes_le(&v)))
            .collect();
        let views = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                TensorView::new(dtype, shape.clone(), bytes).map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Shape(format!("safetensors: {e}")))?;
        let meta = json!({
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "modalities": self.names,
            "dims": self.dims(),
            "blocks": self.block_names(),
            "rank": self.rank(),
            "out_dim": self.out_dim(),
            "p": p_label(self.p),
            "dtype": T::DTYPE_SHORT,
            "stats_fitted": self.stats_fitted,
        });
        let meta = HashMap::from([(METADATA_KEY.to_string(), meta.to_string())]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Shape(format!("safetensors: {e}")))
    }

    /// Writes the model to `path` atomically (on any error the file is left as it was).
    ///
    /// ```
    /// use mmfuse::blocks::BlockSpec;
    /// use mmfuse::lmf::blockwise::BlockLmf;
    /// let model = BlockLmf::<f32>::new(&[("v", 3), ("a", 2)], &BlockSpec::Pairs, 2, 1, 1.0, 5)?;
    /// let path = std::env::temp_dir().join(format!("mmfuse-doc-blk-{}.safetensors", std::process::id()));
    /// model.save(&path)?;
    /// assert_eq!(BlockLmf::<f32>::load(&path)?, model);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic_bytes(path, &self.to_bytes()?)
    }

    /// Reads a model written by [`BlockLmf::save`] (or by a script following the module's
    /// layout). Every inconsistency is an [`Error::Format`] naming the file and the problem.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&bytes, path)
    }

    /// [`BlockLmf::load`] from bytes in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        parse(bytes, Path::new("<block model bytes>"))
    }
}

fn parse<T: Real>(bytes: &[u8], path: &Path) -> Result<BlockLmf<T>> {
    let fmt = |reason: String| Error::Format {
        path: PathBuf::from(path),
        reason: format!("not an mmfuse block LMF model: {reason}"),
    };
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| fmt(format!("not a valid safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| fmt(format!("not a valid safetensors file: {e}")))?;
    let meta_text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            fmt(format!(
                "no `{METADATA_KEY}` metadata (a plain LMF weights file has `modalities` \
                 instead: load it as a plain model)"
            ))
        })?;
    let meta: Value = serde_json::from_str(meta_text)
        .map_err(|e| fmt(format!("metadata `{METADATA_KEY}` is not JSON: {e}")))?;
    let meta = meta
        .as_object()
        .ok_or_else(|| fmt("the metadata is not an object".into()))?;
    if meta.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(fmt(format!("the metadata's format is not `{FORMAT}`")));
    }
    match meta.get("version").and_then(Value::as_u64) {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(fmt(format!(
                "format version {v}; this mmfuse reads version {FORMAT_VERSION}"
            )))
        }
        None => return Err(fmt("no format version".into())),
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        meta.get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
            .ok_or_else(|| fmt(format!("`{key}` is not a list of strings")))
    };
    let count = |key: &str| -> Result<usize> {
        meta.get(key)
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| fmt(format!("`{key}` is not a count")))
    };
    let names = strings("modalities")?;
    let dims: Vec<usize> = meta
        .get("dims")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_u64().and_then(|v| usize::try_from(v).ok()))
                .collect()
        })
        .ok_or_else(|| fmt("`dims` is not a list of counts".into()))?;
    if dims.len() != names.len() {
        return Err(fmt(format!(
            "{} modalities but {} dims",
            names.len(),
            dims.len()
        )));
    }
    let blocks = strings("blocks")?;
    let (rank, h) = (count("rank")?, count("out_dim")?);
    let p = match meta.get("p") {
        Some(Value::String(s)) => parse_p(s).map_err(|e| fmt(format!("`p`: {e}")))?,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| fmt("`p` is not a number".into()))?,
        None => return Err(fmt("`p` is missing".into())),
    };
    check_p(p).map_err(|e| fmt(e.to_string()))?;
    let stats_fitted = meta
        .get("stats_fitted")
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| fmt("`stats_fitted` is not true or false".into()))
        })
        .transpose()?
        .unwrap_or(true);
    // The blocks as a spec: the interactions listed; they must resolve to exactly the file's
    // block list (same order).
    let interactions: Vec<Vec<String>> = blocks
        .iter()
        .filter(|b| b.contains('*'))
        .map(|b| b.split('*').map(str::to_string).collect())
        .collect();
    let spec = if interactions.is_empty() {
        BlockSpec::None
    } else {
        BlockSpec::List(interactions)
    };
    let spec_dims: Vec<(&str, usize)> = names
        .iter()
        .map(String::as_str)
        .zip(dims.iter().copied())
        .collect();
    let mut model =
        BlockLmf::<T>::new(&spec_dims, &spec, rank, h, p, 0).map_err(|e| fmt(e.to_string()))?;
    if model.block_names() != blocks.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(fmt(format!(
            "the blocks {blocks:?} are not the unimodal blocks in modality order followed by \
             the interactions in mmfuse's order ({:?})",
            model.block_names()
        )));
    }
    let read = |name: &str, shape: &[usize]| -> Result<Vec<T>> {
        let view = st
            .tensor(name)
            .map_err(|e| fmt(format!("tensor `{name}`: {e}")))?;
        if view.shape() != shape {
            return Err(fmt(format!(
                "tensor `{name}` has shape {:?}; expected {shape:?}",
                view.shape()
            )));
        }
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            other => {
                return Err(fmt(format!(
                    "tensor `{name}` has dtype {other:?}; expected F32 or F64"
                )))
            }
        };
        if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
            return Err(fmt(format!(
                "tensor `{name}` holds {} at flat index {pos}",
                values[pos]
            )));
        }
        Ok(values.into_iter().map(T::from_f64).collect())
    };
    let expected = model.named_tensors();
    let mut stats: Vec<ModalityStats<T>> = Vec::new();
    for (name, shape, _) in &expected {
        let values = read(name, shape)?;
        if let Some(rest) = name.strip_prefix("stats.") {
            if rest.ends_with(".mean") {
                stats.push(ModalityStats {
                    mean: values,
                    scale: T::ONE,
                });
            } else if let Some(s) = stats.last_mut() {
                s.scale = values[0];
            }
        } else if name == "bias" {
            model.bias_mut().copy_from_slice(&values);
        } else if let Some(block) = name.strip_suffix(".fusion_weights") {
            if let Some(w) = model.fusion_weights_mut(block) {
                w.copy_from_slice(&values);
            }
        } else {
            // `<block>.<modality>`: modality names have no `.`, so the last one splits.
            let (block, modality) = name.rsplit_once('.').unwrap_or((name, ""));
            model
                .set_factor(block, modality, &values)
                .map_err(|e| fmt(e.to_string()))?;
        }
    }
    if st.len() != expected.len() {
        let known: Vec<&str> = expected.iter().map(|(n, _, _)| n.as_str()).collect();
        let extra: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !known.contains(n))
            .map(str::to_string)
            .collect();
        return Err(fmt(format!("unexpected tensors {extra:?}")));
    }
    model.set_stats(stats).map_err(|e| fmt(e.to_string()))?;
    model.stats_fitted = stats_fitted;
    Ok(model)
}
