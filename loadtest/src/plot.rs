//! The PNG chart: the same two panels as the SVG (requests/s and p99 per
//! second), drawn by plotters into an RGB buffer and encoded by `png`
//! directly; plotters' own encoder would bring the `image` crate and its
//! JPEG decoder for one PNG. Text is rendered with a font compiled in
//! (`loadtest/fonts/`, an ASCII subset of DejaVu Sans, licence beside it), so
//! the chart draws the same on a machine without any fonts installed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::chart::{series, title};
use crate::report::{Report, Second};

pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 700;
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
const ENGINE: RGBColor = RGBColor(0x1f, 0x5f, 0xbf);
const BASELINE: RGBColor = RGBColor(0x90, 0x90, 0x90);

/// Writes the chart to `path` as a `WIDTH` × `HEIGHT` RGB PNG.
pub fn write_png(report: &Report, path: &Path) -> Result<(), String> {
    let pixels = draw(report).map_err(|e| format!("draw {}: {e}", path.display()))?;
    let file = std::fs::File::create(path).map_err(|e| format!("write {}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| format!("write {}: {e}", path.display()))?;
    writer.write_image_data(&pixels).map_err(|e| format!("write {}: {e}", path.display()))?;
    writer.finish().map_err(|e| format!("write {}: {e}", path.display()))
}

fn draw(report: &Report) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if !*REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok()) {
        return Err("the embedded font does not parse".into());
    }
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&title(report), ("sans-serif", 20))?;
        let panels = root.split_evenly((2, 1));
        let (engine, baseline) = series(report);
        let seconds = engine.len().max(baseline.len()).max(1) as f64;
        let panel = Panel { engine, baseline, seconds };
        panel.draw(&panels[0], "throughput (requests/s)", |x| x.requests as f64)?;
        panel.draw(&panels[1], "p99 latency (ms)", |x| x.p99_ms)?;
        root.present()?;
    }
    Ok(pixels)
}

struct Panel<'a> {
    engine: &'a [Second],
    baseline: &'a [Second],
    seconds: f64,
}

impl Panel<'_> {
    fn draw(
        &self,
        area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        label: &str,
        value: fn(&Second) -> f64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let max = self.engine.iter().chain(self.baseline).map(value).fold(0.0, f64::max).max(1e-9) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..self.seconds, 0.0..max)?;
        chart
            .configure_mesh()
            .x_desc("seconds after warm-up (s)")
            .y_desc(label)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        // A point per full second, at its middle, as in the SVG.
        let points = |s: &[Second]| s.iter().map(|x| (x.second as f64 + 0.5, value(x))).collect::<Vec<_>>();
        if !self.baseline.is_empty() {
            chart
                .draw_series(LineSeries::new(points(self.baseline), BASELINE.stroke_width(2)))?
                .label("baseline")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BASELINE.stroke_width(2)));
        }
        chart
            .draw_series(LineSeries::new(points(self.engine), ENGINE.stroke_width(2)))?
            .label("engine")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], ENGINE.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}
