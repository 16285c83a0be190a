//! The MKL model file: one safetensors file (docs/design.md section 3, "The model file").
//!
//! Tensors (float64, little-endian, C order), so that every number round-trips bit for bit:
//! - `fit{c}.beta`, `fit{c}.beta_shares` (M), `fit{c}.coef` (n), `fit{c}.gap_history`
//!   (outer iterations), for each fit c = 0, 1, ... (one, or one per class for one-vs-rest);
//! - data-driven models, per modality `<name>`: `data.<name>.train` (n x d, the training rows),
//!   and `data.<name>.diag` / `data.<name>.col_means` (n) when its normalisation needs them.
//!
//! - models with interaction blocks: `centre{i}.col_means` (n), the centring statistics of
//!   modality i's training kernel.
//!
//! Metadata: one entry, [`METADATA_KEY`] (`"mmfuse_mkl"`), a JSON object with the format name
//! and version, the options (p, C, loss, eps, tol, ...), the classes, the scalars of each fit
//! (bias, primal, dual, gap, iteration counts, n_support, converged) and, per modality, its
//! name, kernel spec, normalisation and scalar statistics. One entry because the safetensors
//! crate writes its metadata map in hash order: with several keys the bytes of one model would
//! differ from save to save. Floats in the JSON are written in their shortest round-trip form
//! (`inf` as the string "inf").

use super::{DataKernel, Loss, MklFit, MklModel, MklOptions};
use crate::error::{Error, Result};
use crate::gram::{Kernel, Normalization, TrainStats};
use crate::io::write_atomic_bytes;
use crate::matrix::Matrix;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The metadata key holding the model's description (a JSON object).
pub const METADATA_KEY: &str = "mmfuse_mkl";
/// The `format` field of that description.
pub const FORMAT: &str = "mmfuse-mkl";
/// The version of the layout described in this module.
pub const FORMAT_VERSION: u64 = 1;

fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("nan")
    } else if v > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

fn loss_name(l: Loss) -> &'static str {
    match l {
        Loss::Hinge => "hinge",
        Loss::Squared => "squared",
    }
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl MklModel {
    /// The model as the bytes of its file (see [`MklModel::save`]). The same model always gives
    /// the same bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut fits = Vec::new();
        for (c, f) in self.fits.iter().enumerate() {
            for (name, v) in [
                ("beta", &f.beta),
                ("beta_shares", &f.beta_shares),
                ("coef", &f.coef),
                ("gap_history", &f.gap_history),
            ] {
                tensors.push((format!("fit{c}.{name}"), vec![v.len()], f64_bytes(v)));
            }
            fits.push(json!({
                "bias": num(f.bias), "primal": num(f.primal), "dual": num(f.dual),
                "gap": num(f.gap), "iterations": f.iterations,
                "smo_iterations": f.smo_iterations, "n_support": f.n_support,
                "converged": f.converged,
            }));
        }
        let mut modalities = Vec::new();
        for d in &self.data {
            let t = &d.train;
            tensors.push((
                format!("data.{}.train", d.name),
                vec![t.nrows(), t.ncols()],
                f64_bytes(t.as_slice()),
            ));
            for (name, v) in [("diag", &d.stats.diag), ("col_means", &d.stats.col_means)] {
                if !v.is_empty() {
                    tensors.push((
                        format!("data.{}.{name}", d.name),
                        vec![v.len()],
                        f64_bytes(v),
                    ));
                }
            }
            modalities.push(json!({
                "name": d.name, "kernel": d.kernel.to_string(),
                "normalize": d.stats.kind.to_string(),
                "trace_mean": num(d.stats.trace_mean), "grand_mean": num(d.stats.grand_mean),
            }));
        }
        let blocks = match &self.blocks {
            None => Value::Null,
            Some(b) => {
                for (i, c) in b.centring.iter().enumerate() {
                    tensors.push((
                        format!("centre{i}.col_means"),
                        vec![c.col_means.len()],
                        f64_bytes(&c.col_means),
                    ));
                }
                json!({
                    "modalities": b.modalities,
                    "blocks": b.blocks.iter().map(|k| json!({"name": k.name, "members": k.members})).collect::<Vec<_>>(),
                    "grand_means": b.centring.iter().map(|c| num(c.grand_mean)).collect::<Vec<_>>(),
                    "trace_means": b.scaling.iter().map(|s| num(s.trace_mean)).collect::<Vec<_>>(),
                })
            }
        };
        let o = &self.options;
        let meta = json!({
            "blocks": blocks,
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "p": num(o.p), "c": num(o.c), "loss": loss_name(o.loss), "eps": num(o.eps),
            "tol": num(o.tol), "max_iter": o.max_iter, "max_smo_iter": o.max_smo_iter,
            "allow_indefinite": o.allow_indefinite,
            "classes": self.classes.iter().map(|&v| num(v)).collect::<Vec<_>>(),
            "fits": fits, "modalities": modalities,
        });
        let views = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                TensorView::new(Dtype::F64, shape.clone(), bytes).map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Shape(format!("safetensors: {e}")))?;
        let meta = HashMap::from([(METADATA_KEY.to_string(), meta.to_string())]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Shape(format!("safetensors: {e}")))
    }

    /// Writes the model to `path` (any extension) as one safetensors file: the coefficient
    /// vectors and, for the data-driven form, each modality's training rows as float64 tensors;
    /// kernel specs, normalisation statistics, options, classes and the format version in the
    /// metadata (layout: docs/design.md section 3). The write is atomic: on any error the file
    /// is left as it was.
    ///
    /// ```
    /// use mmfuse::mkl::{MklModel, MklOptions};
    /// use mmfuse::Matrix;
    /// let k = Matrix::from_vec(2, 2, vec![1.0f64, 0.2, 0.2, 1.0])?;
    /// let model = MklModel::fit_classifier(&[&k], &[0.0, 1.0], &MklOptions::default())?;
    /// let path = std::env::temp_dir().join(format!("mmfuse-doc-mkl-{}.model", std::process::id()));
    /// model.save(&path)?;
    /// let back = MklModel::load(&path)?;
    /// assert_eq!(back, model);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic_bytes(path, &self.to_bytes()?)
    }

    /// Reads a model written by [`MklModel::save`]. Every inconsistency (a truncated or
    /// corrupted file, missing or extra tensors, shapes that disagree, non-finite coefficients,
    /// an unknown format version, a JSON model from an earlier mmfuse) is an
    /// [`Error::Format`] naming the file and the problem.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&bytes, path)
    }

    /// [`MklModel::load`] from bytes in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        parse(bytes, Path::new("<MKL model bytes>"))
    }
}

fn parse(bytes: &[u8], path: &Path) -> Result<MklModel> {
    let fmt = |reason: String| Error::Format {
        path: PathBuf::from(path),
        reason: format!("not an mmfuse MKL model: {reason}"),
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Err(fmt(
            "this is a JSON model (format mmfuse-mkl-1, written by mmfuse 0.1 before models \
             became binary); fit again with `mmfuse mkl fit ... --out MODEL` to get a \
             safetensors model"
                .into(),
        ));
    }
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| fmt(format!("not a valid safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| fmt(format!("not a valid safetensors file: {e}")))?;
    let meta_text = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| fmt(format!("no `{METADATA_KEY}` metadata")))?;
    let meta: Value = serde_json::from_str(meta_text)
        .map_err(|e| fmt(format!("metadata `{METADATA_KEY}` is not JSON: {e}")))?;
    let meta = meta
        .as_object()
        .ok_or_else(|| fmt("the metadata is not an object".into()))?;
    if meta.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(fmt(format!("the metadata's format is not `{FORMAT}`")));
    }
    match meta.get("format_version").and_then(Value::as_u64) {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(fmt(format!(
                "format version {v}; this mmfuse reads version {FORMAT_VERSION}"
            )))
        }
        None => return Err(fmt("no format version".into())),
    }
    let r = Reader { st: &st, fmt };
    let options = MklOptions {
        p: r.float(meta, "p")?,
        c: r.float(meta, "c")?,
        loss: match meta.get("loss").and_then(Value::as_str) {
            Some("hinge") => Loss::Hinge,
            Some("squared") => Loss::Squared,
            _ => return Err(fmt("`loss` must be hinge or squared".into())),
        },
        eps: r.float(meta, "eps")?,
        tol: r.float(meta, "tol")?,
        max_iter: r.count(meta, "max_iter")?,
        max_smo_iter: r.count(meta, "max_smo_iter")?,
        allow_indefinite: r.flag(meta, "allow_indefinite")?,
    };
    if !(options.p >= 1.0 && options.c > 0.0 && options.c.is_finite()) {
        return Err(fmt(format!(
            "options out of range: p = {}, C = {}",
            options.p, options.c
        )));
    }
    let classes = r
        .array(meta, "classes")?
        .iter()
        .map(|v| r.value_float(v, "classes"))
        .collect::<Result<Vec<_>>>()?;
    let mut fits = Vec::new();
    let mut used = Vec::new();
    for (c, f) in r.array(meta, "fits")?.iter().enumerate() {
        let f = f
            .as_object()
            .ok_or_else(|| fmt(format!("fit {c} is not an object")))?;
        let mut vector = |name: &str| -> Result<Vec<f64>> {
            let t = format!("fit{c}.{name}");
            let (shape, v) = r.tensor(&t)?;
            if shape.len() != 1 {
                return Err(fmt(format!(
                    "tensor `{t}` has shape {shape:?}; expected 1-D"
                )));
            }
            used.push(t);
            Ok(v)
        };
        let fit = MklFit {
            beta: vector("beta")?,
            beta_shares: vector("beta_shares")?,
            coef: vector("coef")?,
            gap_history: vector("gap_history")?,
            bias: r.float(f, "bias")?,
            primal: r.float(f, "primal")?,
            dual: r.float(f, "dual")?,
            gap: r.float(f, "gap")?,
            iterations: r.count(f, "iterations")?,
            smo_iterations: r.count(f, "smo_iterations")?,
            n_support: r.count(f, "n_support")?,
            converged: r.flag(f, "converged")?,
        };
        fits.push(fit);
    }
    let Some(first) = fits.first() else {
        return Err(fmt("no fits".into()));
    };
    let (nb, nc) = (first.beta.len(), first.coef.len());
    if nb == 0 || nc == 0 {
        return Err(fmt("a fit has no kernel weights or no coefficients".into()));
    }
    for (c, f) in fits.iter().enumerate() {
        if f.beta.len() != nb || f.beta_shares.len() != nb || f.coef.len() != nc {
            return Err(fmt(format!(
                "fit {c} has {} weights, {} shares and {} coefficients; fit 0 has {nb} \
                 weights and {nc} coefficients",
                f.beta.len(),
                f.beta_shares.len(),
                f.coef.len()
            )));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !(finite(&f.beta) && finite(&f.beta_shares) && finite(&f.coef) && f.bias.is_finite()) {
            return Err(fmt(format!(
                "fit {c} has a non-finite weight or coefficient"
            )));
        }
    }
    let expected_fits = match classes.len() {
        0 | 2 => 1,
        k => k,
    };
    if classes.len() == 1 || fits.len() != expected_fits {
        return Err(fmt(format!(
            "{} classes but {} fits",
            classes.len(),
            fits.len()
        )));
    }
    let mut data = Vec::new();
    for (m, e) in r.array(meta, "modalities")?.iter().enumerate() {
        let e = e
            .as_object()
            .ok_or_else(|| fmt(format!("modality {m} is not an object")))?;
        let name = r.text(e, "name")?;
        if data.iter().any(|d: &DataKernel| d.name == name) {
            return Err(fmt(format!("modality `{name}` appears twice")));
        }
        let kernel: Kernel = r
            .text(e, "kernel")?
            .parse()
            .map_err(|err| fmt(format!("modality `{name}`: {err}")))?;
        let kind: Normalization = r
            .text(e, "normalize")?
            .parse()
            .map_err(|err| fmt(format!("modality `{name}`: {err}")))?;
        let t = format!("data.{name}.train");
        let (shape, values) = r.tensor(&t)?;
        let [rows, cols] = shape[..] else {
            return Err(fmt(format!(
                "tensor `{t}` has shape {shape:?}; expected 2-D"
            )));
        };
        if rows != nc || cols == 0 {
            return Err(fmt(format!(
                "tensor `{t}` has shape {shape:?}; expected [{nc}, features >= 1]"
            )));
        }
        if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
            return Err(fmt(format!(
                "tensor `{t}` has a non-finite value at row {}, column {}",
                pos / cols,
                pos % cols
            )));
        }
        used.push(t);
        let mut optional = |stat: &str| -> Result<Vec<f64>> {
            let t = format!("data.{name}.{stat}");
            if !r.st.names().contains(&t.as_str()) {
                return Ok(Vec::new());
            }
            let (shape, v) = r.tensor(&t)?;
            if shape != [nc] {
                return Err(fmt(format!(
                    "tensor `{t}` has shape {shape:?}; expected [{nc}]"
                )));
            }
            used.push(t);
            Ok(v)
        };
        let stats = TrainStats {
            kind,
            trace_mean: r.float(e, "trace_mean")?,
            grand_mean: r.float(e, "grand_mean")?,
            diag: optional("diag")?,
            col_means: optional("col_means")?,
        };
        let needs = match kind {
            Normalization::UnitDiag => !stats.diag.is_empty(),
            Normalization::Center => !stats.col_means.is_empty(),
            Normalization::Trace => stats.trace_mean.is_finite() && stats.trace_mean > 0.0,
            Normalization::None => true,
        };
        if !needs {
            return Err(fmt(format!(
                "modality `{name}`: the statistics of its `{kind}` normalisation are missing"
            )));
        }
        data.push(DataKernel {
            name,
            kernel: kernel
                .resolve(cols)
                .map_err(|err| fmt(format!("modality {m}: {err}")))?,
            train: Matrix::from_vec(rows, cols, values)?,
            stats,
        });
    }
    let blocks = match meta.get("blocks") {
        None | Some(Value::Null) => None,
        Some(Value::Object(b)) => {
            let modalities = r
                .array(b, "modalities")?
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| fmt("block modalities are not strings".into()))?;
            let names: Vec<&str> = modalities.iter().map(String::as_str).collect();
            let grand = r.array(b, "grand_means")?;
            let traces = r.array(b, "trace_means")?;
            let list = r.array(b, "blocks")?;
            if grand.len() != names.len() || traces.len() != list.len() || names.is_empty() {
                return Err(fmt("block statistics of the wrong length".into()));
            }
            let mut centring = Vec::new();
            for (i, g) in grand.iter().enumerate() {
                let t = format!("centre{i}.col_means");
                let (shape, col_means) = r.tensor(&t)?;
                if shape != [nc] || col_means.iter().any(|v| !v.is_finite()) {
                    return Err(fmt(format!(
                        "tensor `{t}` has shape {shape:?} or non-finite values; expected [{nc}]"
                    )));
                }
                used.push(t);
                centring.push(TrainStats {
                    kind: Normalization::Center,
                    trace_mean: 1.0,
                    diag: Vec::new(),
                    col_means,
                    grand_mean: r.value_float(g, "grand_means")?,
                });
            }
            let mut blocks = Vec::new();
            let mut scaling = Vec::new();
            for (k, t) in list.iter().zip(traces) {
                let k = k
                    .as_object()
                    .ok_or_else(|| fmt("a block is not an object".into()))?;
                let members = r
                    .array(k, "members")?
                    .iter()
                    .map(|v| v.as_u64().and_then(|i| usize::try_from(i).ok()))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| fmt("block members are not indices".into()))?;
                let ok = !members.is_empty()
                    && members.windows(2).all(|w| w[0] < w[1])
                    && members.iter().all(|&i| i < names.len());
                let name = r.text(k, "name")?;
                if !ok
                    || name
                        != members
                            .iter()
                            .map(|&i| names[i])
                            .collect::<Vec<_>>()
                            .join("*")
                {
                    return Err(fmt(format!("block `{name}` has bad members {members:?}")));
                }
                let trace_mean = r.value_float(t, "trace_means")?;
                if !(trace_mean.is_finite() && trace_mean > 0.0) {
                    return Err(fmt(format!("block `{name}` has trace mean {trace_mean}")));
                }
                blocks.push(crate::blocks::Block { members, name });
                scaling.push(TrainStats {
                    kind: Normalization::Trace,
                    trace_mean,
                    diag: Vec::new(),
                    col_means: Vec::new(),
                    grand_mean: 0.0,
                });
            }
            Some(super::BlockKernels {
                modalities,
                blocks,
                centring,
                scaling,
            })
        }
        Some(_) => return Err(fmt("`blocks` is not an object".into())),
    };
    if let Some(extra) = st
        .names()
        .into_iter()
        .find(|t| !used.iter().any(|u| u == t))
    {
        return Err(fmt(format!("unexpected tensor `{extra}`")));
    }
    let mut model = MklModel {
        options,
        classes,
        fits,
        data: Vec::new(),
        blocks: None,
    };
    if let Some(b) = blocks {
        model = model.with_blocks(b).map_err(|e| fmt(e.to_string()))?;
    }
    if data.is_empty() {
        Ok(model)
    } else {
        model.with_data(data).map_err(|e| fmt(e.to_string()))
    }
}

/// Typed reads from the metadata object and the tensors, with errors that name the field.
struct Reader<'a, F: Fn(String) -> Error> {
    st: &'a SafeTensors<'a>,
    fmt: F,
}

impl<F: Fn(String) -> Error> Reader<'_, F> {
    fn get<'v>(&self, o: &'v Map<String, Value>, key: &str) -> Result<&'v Value> {
        o.get(key)
            .ok_or_else(|| (self.fmt)(format!("`{key}` is missing")))
    }

    fn value_float(&self, v: &Value, key: &str) -> Result<f64> {
        match v {
            Value::String(s) if s == "inf" => Ok(f64::INFINITY),
            Value::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
            Value::String(s) if s == "nan" => Ok(f64::NAN),
            _ => v
                .as_f64()
                .ok_or_else(|| (self.fmt)(format!("`{key}` is not a number"))),
        }
    }

    fn float(&self, o: &Map<String, Value>, key: &str) -> Result<f64> {
        self.value_float(self.get(o, key)?, key)
    }

    fn count(&self, o: &Map<String, Value>, key: &str) -> Result<usize> {
        self.get(o, key)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| (self.fmt)(format!("`{key}` is not a count")))
    }

    fn flag(&self, o: &Map<String, Value>, key: &str) -> Result<bool> {
        self.get(o, key)?
            .as_bool()
            .ok_or_else(|| (self.fmt)(format!("`{key}` is not true or false")))
    }

    fn text(&self, o: &Map<String, Value>, key: &str) -> Result<String> {
        self.get(o, key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| (self.fmt)(format!("`{key}` is not a string")))
    }

    fn array<'v>(&self, o: &'v Map<String, Value>, key: &str) -> Result<&'v Vec<Value>> {
        self.get(o, key)?
            .as_array()
            .ok_or_else(|| (self.fmt)(format!("`{key}` is not an array")))
    }

    /// A float64 tensor: its shape and values (every value read, none checked here).
    fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let view = self
            .st
            .tensor(name)
            .map_err(|e| (self.fmt)(format!("tensor `{name}`: {e}")))?;
        if view.dtype() != Dtype::F64 {
            return Err((self.fmt)(format!(
                "tensor `{name}` has dtype {:?}; expected F64",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Ok((view.shape().to_vec(), values))
    }
}
