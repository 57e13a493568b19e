// A line chart on a <canvas>, drawn by hand. Why not a charting library: the dashboard draws
// a few line series that scroll; a library would be a dependency to vendor (the demos have no
// build step and no CDN) and to keep updated, for what fits in this file.
//
// `new LineChart(canvas, {series: [{key, label, color, dash}], capacity})`; `push(key, value)` adds
// a point (the oldest goes past `capacity`); `draw()` repaints. The canvas carries
// `data-points-KEY` (points drawn per series) for tests and tools.

export class LineChart {
  constructor(canvas, { series, capacity = 60, min = 0 }) {
    this.canvas = canvas;
    this.capacity = capacity;
    this.min = min; // the value axis starts at or below this
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(canvas);
  }

  push(key, value) {
    const series = this.series.find((s) => s.key === key);
    if (!series || !Number.isFinite(value)) return;
    series.points.push(value);
    if (series.points.length > this.capacity) series.points.shift();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const style = getComputedStyle(canvas);
    const textColor = style.getPropertyValue("--muted").trim() || "#667";
    const gridColor = style.getPropertyValue("--line").trim() || "#ddd";
    const pad = { left: 48, right: 12, top: 26, bottom: 20 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;

    // The value axis: from min(0, lowest) to a "nice" number above the highest.
    const all = this.series.flatMap((s) => s.points);
    let low = Math.min(this.min, ...all);
    let high = Math.max(low + 1, ...all);
    const step = niceStep((high - low) / 4);
    low = Math.floor(low / step) * step;
    high = Math.ceil(high / step) * step;
    const y = (v) => pad.top + plotH - ((v - low) / (high - low)) * plotH;
    const x = (i) => pad.left + (i / (this.capacity - 1)) * plotW;

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let v = low; v <= high + step / 2; v += step) {
      ctx.strokeStyle = gridColor;
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(y(v)) + 0.5);
      ctx.lineTo(width - pad.right, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.fillStyle = textColor;
      ctx.fillText(formatValue(v), pad.left - 6, y(v));
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
    ctx.fillText(`last ${this.capacity} s`, pad.left, height - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", width - pad.right, height - 4);

    // The series, newest point at the right edge.
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const series of this.series) {
      const { points } = series;
      const first = this.capacity - points.length;
      ctx.strokeStyle = series.color;
      ctx.setLineDash(series.dash ?? []);
      ctx.beginPath();
      points.forEach((v, i) => (i === 0 ? ctx.moveTo(x(first + i), y(v)) : ctx.lineTo(x(first + i), y(v))));
      ctx.stroke();
      if (points.length === 1) {
        ctx.fillStyle = series.color;
        ctx.fillRect(x(first) - 2, y(points[0]) - 2, 4, 4);
      }
      canvas.setAttribute(`data-points-${series.key}`, String(points.length));
    }

    ctx.setLineDash([]);

    // The legend, with each series' latest value.
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    let lx = pad.left;
    for (const series of this.series) {
      const last = series.points.at(-1);
      const text = `${series.label}${last === undefined ? "" : `: ${formatValue(last)}`}`;
      ctx.fillStyle = series.color;
      ctx.fillRect(lx, 9, 12, 4);
      ctx.fillStyle = textColor;
      ctx.fillText(text, lx + 16, 11);
      lx += 16 + ctx.measureText(text).width + 18;
    }
  }
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function formatValue(v) {
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 2 : 1);
}
