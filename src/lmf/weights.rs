//! Weights files: safetensors in the PyTorch reference layout.
//!
//! Tensors (float32, little-endian, C order):
//! - `<modality>_factor`: `(r, d_m + 1, h)`, one per modality;
//! - `fusion_weights`: `(1, r)`;
//! - `fusion_bias`: `(1, h)`.
//!
//! The header's metadata maps [`MODALITIES_KEY`] (`"modalities"`) to the names in order,
//! comma-separated (`"visual,audio,text"`). A file written by PyTorch
//! (`safetensors.torch.save_file(module.state_dict(), path)`) has no such entry: loading it needs
//! the order given explicitly. Nothing else is accepted: other tensors, other dtypes, other
//! shapes or non-finite values are errors naming the tensor.

use super::model::{torch_to_gemm_layout, LmfModel};
use crate::error::{Error, Result};
use crate::io::write_atomic_bytes;
use crate::matrix::Matrix;
use crate::scalar::Real;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key of the comma-separated modality names.
pub const MODALITIES_KEY: &str = "modalities";
/// Name of the fusion weights tensor, `(1, r)`.
pub const FUSION_WEIGHTS: &str = "fusion_weights";
/// Name of the bias tensor, `(1, h)`.
pub const FUSION_BIAS: &str = "fusion_bias";
/// Suffix of the factor tensors' names: modality `visual` has `visual_factor`.
pub const FACTOR_SUFFIX: &str = "_factor";

fn f32_bytes<T: Real>(values: &[T], what: &str, ncols: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for (pos, v) in values.iter().enumerate() {
        let x = v.to_f64() as f32;
        if !x.is_finite() {
            return Err(Error::NonFinite {
                what: format!("{what} (as float32)"),
                row: pos / ncols.max(1),
                col: pos % ncols.max(1),
                value: format!("{x}"),
            });
        }
        out.extend_from_slice(&x.to_le_bytes());
    }
    Ok(out)
}

impl<T: Real> LmfModel<T> {
    /// The model as a safetensors file (see the module docs). f64 values are rounded to f32.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let (r, h) = (self.rank, self.out_dim);
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (m, name) in self.names.iter().enumerate() {
            let tname = format!("{name}{FACTOR_SUFFIX}");
            let torch = self.factor_torch_layout(m)?;
            let bytes = f32_bytes(&torch, &tname, h)?;
            tensors.push((tname, vec![r, self.dims[m] + 1, h], bytes));
        }
        tensors.push((
            FUSION_WEIGHTS.into(),
            vec![1, r],
            f32_bytes(&self.fusion_weights, FUSION_WEIGHTS, r)?,
        ));
        tensors.push((
            FUSION_BIAS.into(),
            vec![1, h],
            f32_bytes(&self.bias, FUSION_BIAS, h)?,
        ));
        let views = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Shape(format!("safetensors: {e}")))?;
        // One metadata entry only: the crate writes the map in hash order, so a second key
        // would make the bytes of the same model differ from one save to the next.
        let meta = HashMap::from([(MODALITIES_KEY.to_string(), self.names.join(","))]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Shape(format!("safetensors: {e}")))
    }

    /// Writes the model to `path` as safetensors, atomically: on any error the file is left as
    /// it was (no half-written model).
    ///
    /// ```
    /// use mmfuse::lmf::LmfModel;
    /// let model = LmfModel::<f32>::new(&[("text", 3), ("audio", 2)], 2, 1, 5)?;
    /// let name = format!("mmfuse-doc-lmf-{}.safetensors", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// model.save_safetensors(&path)?;
    /// let back = LmfModel::<f32>::load_safetensors(&path, None)?;
    /// assert_eq!(back, model);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_safetensors_bytes()?;
        write_atomic_bytes(path, &bytes)
    }

    /// Reads a model from a safetensors file. `order` gives the modality names in the order
    /// inputs will be passed; it is required when the file has no `modalities` metadata (files
    /// saved by PyTorch) and, when given, overrides the metadata's order (it must name the same
    /// modalities).
    pub fn load_safetensors(path: impl AsRef<Path>, order: Option<&[&str]>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&bytes, order, path)
    }

    /// [`LmfModel::load_safetensors`] from bytes in memory.
    pub fn from_safetensors_bytes(bytes: &[u8], order: Option<&[&str]>) -> Result<Self> {
        parse(bytes, order, Path::new("<safetensors bytes>"))
    }
}

fn parse<T: Real>(bytes: &[u8], order: Option<&[&str]>, path: &Path) -> Result<LmfModel<T>> {
    let fmt = |reason: String| Error::Format {
        path: PathBuf::from(path),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| fmt(format!("not a valid safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| fmt(format!("not a valid safetensors file: {e}")))?;
    let mut file_names: Vec<String> = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    let mut tensor_names: Vec<&str> = st.names();
    tensor_names.sort_unstable();
    for t in &tensor_names {
        if let Some(m) = t.strip_suffix(FACTOR_SUFFIX) {
            file_names.push(m.to_string());
        } else if *t != FUSION_WEIGHTS && *t != FUSION_BIAS {
            unexpected.push(format!("`{t}`"));
        }
    }
    if !unexpected.is_empty() {
        return Err(fmt(format!(
            "unexpected tensor {} (an LMF weights file holds `<modality>{FACTOR_SUFFIX}`, \
             `{FUSION_WEIGHTS}` and `{FUSION_BIAS}` only)",
            unexpected.join(", ")
        )));
    }
    for t in [FUSION_WEIGHTS, FUSION_BIAS] {
        if !tensor_names.contains(&t) {
            return Err(fmt(format!("missing tensor `{t}`")));
        }
    }
    if file_names.is_empty() {
        return Err(fmt(format!("no `<modality>{FACTOR_SUFFIX}` tensor")));
    }
    let meta_order = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(MODALITIES_KEY))
        .map(|s| s.split(',').map(str::to_string).collect::<Vec<_>>());
    let (names, source): (Vec<String>, &str) = match (order, meta_order) {
        (Some(o), _) => (o.iter().map(|s| s.to_string()).collect(), "the given order"),
        (None, Some(m)) => (m, "the file's `modalities` metadata"),
        (None, None) => {
            return Err(fmt(format!(
                "the file has no `{MODALITIES_KEY}` metadata (a file saved by PyTorch), so the \
                 order of its modalities ({}) is unknown; give the order explicitly",
                file_names.join(", ")
            )))
        }
    };
    for n in &names {
        if !file_names.contains(n) {
            return Err(fmt(format!(
                "{source} names modality `{n}` but the file has no tensor `{n}{FACTOR_SUFFIX}` \
                 (it has factors for {})",
                file_names.join(", ")
            )));
        }
    }
    for n in &file_names {
        if !names.contains(n) {
            return Err(fmt(format!(
                "tensor `{n}{FACTOR_SUFFIX}` is not in {source} ({})",
                names.join(", ")
            )));
        }
    }
    super::model::check_modalities(&names, &vec![1; names.len()])
        .map_err(|e| fmt(e.to_string()))?;

    let read = |name: &str| -> Result<(Vec<usize>, Vec<T>)> {
        let view = st
            .tensor(name)
            .map_err(|e| fmt(format!("tensor `{name}`: {e}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(fmt(format!(
                "tensor `{name}` has dtype {:?}; expected F32",
                view.dtype()
            )));
        }
        let shape = view.shape().to_vec();
        let ncols = shape.last().copied().unwrap_or(1);
        let mut values = Vec::with_capacity(view.data().len() / 4);
        for (pos, chunk) in view.data().chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("{}: tensor `{name}`", path.display()),
                    row: pos / ncols.max(1),
                    col: pos % ncols.max(1),
                    value: format!("{v}"),
                });
            }
            values.push(T::from_f64(v as f64));
        }
        Ok((shape, values))
    };

    let (wshape, fusion_weights) = read(FUSION_WEIGHTS)?;
    let rank = match wshape[..] {
        [1, r] if r >= 1 => r,
        _ => {
            return Err(fmt(format!(
                "tensor `{FUSION_WEIGHTS}` has shape {wshape:?}; expected [1, rank] with rank >= 1"
            )))
        }
    };
    let (bshape, bias) = read(FUSION_BIAS)?;
    let out_dim = match bshape[..] {
        [1, h] if h >= 1 => h,
        _ => {
            return Err(fmt(format!(
            "tensor `{FUSION_BIAS}` has shape {bshape:?}; expected [1, out_dim] with out_dim >= 1"
        )))
        }
    };
    let mut factors: Vec<Matrix<T>> = Vec::with_capacity(names.len());
    for n in &names {
        let tname = format!("{n}{FACTOR_SUFFIX}");
        let (shape, values) = read(&tname)?;
        match shape[..] {
            [r, d1, h] if r == rank && h == out_dim && d1 >= 2 => {
                factors.push(torch_to_gemm_layout(&values, r, d1, h)?);
            }
            _ => {
                return Err(fmt(format!(
                    "tensor `{tname}` has shape {shape:?}; expected [rank {rank}, features + 1 \
                     (>= 2), out_dim {out_dim}] (rank from `{FUSION_WEIGHTS}`, out_dim from \
                     `{FUSION_BIAS}`)"
                )))
            }
        }
    }
    LmfModel::from_parts(&names, rank, out_dim, factors, fusion_weights, bias)
}
