//! Where a figure is drawn: PNG or SVG (by the output's extension), its size and resolution,
//! and the text style. Text is drawn with a font embedded in the binary
//! ([`epaint_default_fonts`]' Ubuntu, the font egui draws with), registered with plotters once,
//! so figures render on a headless machine without system fonts.
//!
//! Sizes are in CSS pixels (1/96 inch): a PNG at `dpi` is `width × dpi/96` pixels wide, with
//! every font and line scaled alike and the resolution recorded in its `pHYs` chunk; an SVG is
//! `width × height` user units whatever the dpi.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{ReportError, Result};

/// The plotters font family every figure uses.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process; before any layout).
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // Only fails for a font that does not parse: the embedded one does.
            let _ = plotters::style::register_font(FONT, style, epaint_default_fonts::UBUNTU_LIGHT);
        }
    });
}

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// A PNG bitmap.
    Png,
    /// An SVG document (text kept as text).
    Svg,
}

impl OutputFormat {
    /// The format named by `path`'s extension (`.png`, `.svg`, any case).
    ///
    /// # Errors
    /// [`ReportError::UnknownFormat`] for any other extension.
    pub fn of_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => Err(ReportError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Size and resolution of a figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Canvas {
    /// Width in CSS pixels.
    pub width: u32,
    /// Height in CSS pixels.
    pub height: u32,
    /// Dots per inch of a PNG (96: one pixel per CSS pixel).
    pub dpi: f64,
}

impl Canvas {
    /// A canvas of `width × height` CSS pixels at 96 dpi.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            dpi: 96.0,
        }
    }

    /// The same canvas at `dpi`.
    #[must_use]
    pub fn with_dpi(self, dpi: f64) -> Self {
        Self { dpi, ..self }
    }

    /// Scale of fonts and lines: `dpi / 96`.
    pub fn scale(&self) -> f64 {
        self.dpi / 96.0
    }

    /// The PNG's size in pixels.
    pub fn pixels(&self) -> (u32, u32) {
        let s = self.scale();
        (
            ((self.width as f64 * s).round() as u32).max(1),
            ((self.height as f64 * s).round() as u32).max(1),
        )
    }
}

/// Fonts and line widths at a canvas' scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    /// Multiplier of every size (`dpi / 96` for PNGs, 1 for SVGs).
    pub scale: f64,
}

impl Style {
    /// A length of `px` CSS pixels at this scale.
    pub fn px(&self, px: f64) -> i32 {
        (px * self.scale).round() as i32
    }

    /// A length as `u32`.
    pub fn upx(&self, px: f64) -> u32 {
        self.px(px).max(0) as u32
    }

    /// Text of `size` CSS pixels.
    pub fn text(&self, size: f64) -> TextStyle<'static> {
        (FONT, size * self.scale).into_font().color(&BLACK)
    }

    /// The title's text.
    pub fn title(&self) -> TextStyle<'static> {
        self.text(19.0)
    }

    /// Axis descriptions.
    pub fn label(&self) -> TextStyle<'static> {
        self.text(15.0)
    }

    /// Tick labels and legends.
    pub fn tick(&self) -> TextStyle<'static> {
        self.text(13.0)
    }

    /// A line width of `px` CSS pixels (at least 1).
    pub fn stroke(&self, px: f64) -> u32 {
        self.upx(px).max(1)
    }
}

/// A figure: drawn the same way onto a bitmap or an SVG.
pub trait Figure {
    /// The figure kind (`sparsity`, `curves`, …), for errors.
    fn kind(&self) -> &'static str;

    /// The size it reads best at, in CSS pixels.
    fn default_size(&self) -> (u32, u32);

    /// Draws the whole figure onto `area` (already white).
    ///
    /// # Errors
    /// plotters' drawing errors.
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
    ) -> DrawResult<DB>;
}

/// What a figure's drawing returns.
pub type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_error<E: std::error::Error + Send + Sync>(
    figure: &'static str,
) -> impl FnOnce(DrawingAreaErrorKind<E>) -> ReportError {
    move |e| ReportError::Draw {
        figure,
        message: e.to_string(),
    }
}

fn draw_on<DB: DrawingBackend, F: Figure + ?Sized>(
    figure: &F,
    area: &DrawingArea<DB, Shift>,
    style: &Style,
) -> Result<()> {
    area.fill(&WHITE).map_err(draw_error(figure.kind()))?;
    figure
        .draw(area, style)
        .map_err(draw_error(figure.kind()))?;
    area.present().map_err(draw_error(figure.kind()))
}

/// The figure as PNG bytes (RGB, 8 bits, `pHYs` = the canvas' dpi).
///
/// # Errors
/// Drawing or encoding fails.
pub fn render_png<F: Figure + ?Sized>(figure: &F, canvas: Canvas) -> Result<Vec<u8>> {
    register_fonts();
    let (w, h) = canvas.pixels();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw_on(
            figure,
            &area,
            &Style {
                scale: canvas.scale(),
            },
        )?;
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let per_metre = (canvas.dpi / 0.0254).round() as u32;
    encoder.set_pixel_dims(Some(png::PixelDimensions {
        xppu: per_metre,
        yppu: per_metre,
        unit: png::Unit::Meter,
    }));
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(bytes)
}

/// The figure as an SVG document.
///
/// # Errors
/// Drawing fails.
pub fn render_svg<F: Figure + ?Sized>(figure: &F, canvas: Canvas) -> Result<String> {
    register_fonts();
    let mut svg = String::new();
    {
        let area =
            SVGBackend::with_string(&mut svg, (canvas.width, canvas.height)).into_drawing_area();
        draw_on(figure, &area, &Style { scale: 1.0 })?;
    }
    Ok(svg)
}

/// Renders the figure in the format of `path`'s extension and writes it atomically (temporary
/// file + rename). `canvas` defaults to the figure's own size at 96 dpi.
///
/// # Errors
/// An unknown extension, drawing, encoding or writing fails.
pub fn save<F: Figure + ?Sized>(figure: &F, path: &Path, canvas: Option<Canvas>) -> Result<()> {
    let canvas = canvas.unwrap_or_else(|| {
        let (w, h) = figure.default_size();
        Canvas::new(w, h)
    });
    let bytes = match OutputFormat::of_path(path)? {
        OutputFormat::Png => render_png(figure, canvas)?,
        OutputFormat::Svg => render_svg(figure, canvas)?.into_bytes(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::Io {
            action: "creating",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    finesse_bert::io::write_atomic(path, &bytes)?;
    Ok(())
}
