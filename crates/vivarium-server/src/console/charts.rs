//! The dashboard's charts, drawn on the server as SVG with plotters. A chart reaches the page
//! as an image (a `data:` URL), so that nothing in it, an action's name included, can act
//! as markup of the page; plotters escapes its text as well.

use base64::Engine;
use plotters::prelude::*;

/// Size of a chart, in pixels.
const SIZE: (u32, u32) = (640, 280);

/// The series' colors, in order: readable on white and told apart without relying on hue
/// alone (the legend names each).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// One named line of a chart: `(x, y)` points.
pub(super) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart over `x_range`, its x values labelled by `x_label` (`-45` → `45 min ago`).
pub(super) struct LineChart<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub x_range: (f64, f64),
    pub x_label: &'a dyn Fn(&f64) -> String,
    pub series: Vec<Series>,
}

/// A chart as a `data:` URL for an `<img>`, or why it could not be drawn.
pub(super) type Drawn = Result<String, String>;

impl LineChart<'_> {
    /// The chart as an SVG image.
    pub fn draw(&self) -> Drawn {
        let mut svg = String::new();
        self.draw_into(&mut svg).map_err(|e| e.to_string())?;
        Ok(data_url(&svg))
    }

    fn draw_into(&self, svg: &mut String) -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let top = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|(_, y)| *y))
            .fold(0.0_f64, f64::max);
        let y_top = if top > 0.0 { top * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(self.x_range.0..self.x_range.1, 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(6)
            .x_label_formatter(self.x_label)
            .y_desc(self.y_label)
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()?;
        for (index, series) in self.series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(series.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        for (index, series) in self.series.iter().enumerate() {
            let color = PALETTE[index % PALETTE.len()];
            // Markers on the non-zero points, so that a series of one point is seen too.
            chart.draw_series(
                series
                    .points
                    .iter()
                    .filter(|(_, y)| *y > 0.0)
                    .map(|point| Circle::new(*point, 2, color.filled())),
            )?;
        }
        if !self.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0xcc, 0xcc, 0xcc))
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}

/// A horizontal bar chart of `bars` (label, value), largest first.
pub(super) fn bars(title: &str, value_label: &str, bars: &[(String, f64)]) -> Drawn {
    let mut svg = String::new();
    draw_bars(&mut svg, title, value_label, bars).map_err(|e| e.to_string())?;
    Ok(data_url(&svg))
}

fn draw_bars<'a>(
    svg: &'a mut String,
    title: &str,
    value_label: &str,
    bars: &[(String, f64)],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let rows = bars.len().max(1);
    let labels: Vec<String> = bars.iter().map(|(label, _)| label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(150)
        .build_cartesian_2d(0.0..top, (0..rows).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(value_label)
        .y_labels(rows)
        .y_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(row) => labels.get(*row).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(row, (_, value))| {
        Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row)),
                (*value, SegmentValue::Exact(row + 1)),
            ],
            PALETTE[1].mix(0.8).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

fn data_url(svg: &str) -> String {
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(url: &str) -> String {
        let payload = url.strip_prefix("data:image/svg+xml;base64,").unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_line_chart_is_an_svg_with_its_title_and_legend() {
        let chart = LineChart {
            title: "Runs per minute",
            y_label: "runs/min",
            x_range: (-60.0, 0.0),
            x_label: &|x| format!("{}m", -x),
            series: vec![Series {
                name: "ok".into(),
                points: vec![(-60.0, 1.0), (-30.0, 4.0), (0.0, 2.0)],
            }],
        };
        let svg = decoded(&chart.draw().unwrap());
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Runs per minute"));
        assert!(
            svg.contains("\nok\n</text>"),
            "the legend names the series: {svg}"
        );
    }

    #[test]
    fn bar_labels_are_text_not_markup() {
        let svg =
            decoded(&bars("Failing", "failures", &[("<script>x</script>".into(), 3.0)]).unwrap());
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
    }
}
