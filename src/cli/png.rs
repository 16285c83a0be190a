//! PNG copies of the demo's SVG figures, so that they show where SVG does not (some viewers,
//! chat tools, issue trackers). Rendered by resvg with the system's fonts; on a machine with no
//! fonts the shapes render and the text is left out (the SVG stays the reference).

use mmfuse::error::{Error, Result};
use resvg::{tiny_skia, usvg};
use std::sync::OnceLock;

/// The system fonts, loaded once per process (a scan of the font folders).
fn options() -> &'static usvg::Options<'static> {
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut o = usvg::Options::default();
        let db = o.fontdb_mut();
        db.load_system_fonts();
        // The figures ask for the generic `sans-serif`, which fontdb maps to Arial by default:
        // point it (and the default family) at a sans face this machine has.
        let families: Vec<String> = db
            .faces()
            .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
            .collect();
        let pick = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"]
            .iter()
            .find(|want| families.iter().any(|f| f == *want))
            .map(|s| s.to_string())
            .or_else(|| families.iter().find(|f| f.contains("Sans")).cloned())
            .or_else(|| families.first().cloned());
        if let Some(family) = pick {
            db.set_sans_serif_family(family.clone());
            o.font_family = family;
        }
        o
    })
}

/// Renders an SVG document to PNG bytes at `scale` (2.0: twice the SVG's pixel size).
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>> {
    let bad = |what: String| Error::param("figure", what);
    let tree = usvg::Tree::from_str(svg, options()).map_err(|e| bad(format!("SVG: {e}")))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or_else(|| bad("empty".into()))?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| {
        bad(format!(
            "cannot render {} x {}",
            size.width(),
            size.height()
        ))
    })?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| bad(format!("PNG encoding: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_renders_to_a_png() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="white"/><text x="2" y="14">ab</text></svg>"#;
        let png = svg_to_png(svg, 2.0).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(svg_to_png("<svg", 1.0).is_err());
    }
}
