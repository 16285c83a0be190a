//! The element types the engine computes in: `f32` and `f64`.

/// A real floating-point type the engine works in (`f32` or `f64`); sealed.
pub trait Real:
    faer::traits::RealField
    + mmfuse_kernels::Float
    + Copy
    + Send
    + Sync
    + std::fmt::Debug
    + std::fmt::Display
    + 'static
    + sealed::Sealed
{
    /// Machine epsilon (unit roundoff times two).
    const EPSILON: Self;
    /// Name as NumPy spells the dtype (`"float32"`, `"float64"`).
    const DTYPE: &'static str;
    /// Short name (`"f32"`, `"f64"`).
    const DTYPE_SHORT: &'static str;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Real for f32 {
    const EPSILON: Self = f32::EPSILON;
    const DTYPE: &'static str = "float32";
    const DTYPE_SHORT: &'static str = "f32";
}

impl Real for f64 {
    const EPSILON: Self = f64::EPSILON;
    const DTYPE: &'static str = "float64";
    const DTYPE_SHORT: &'static str = "f64";
}
