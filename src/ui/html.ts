// HTML built from templates that escape every interpolated value: module paths, versions and
// go.mod text come from upstreams and publishers, so nothing reaches a page unescaped unless it
// is an Html fragment this code built itself.
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Safe in element content and in quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => ESCAPES[c] as string);
}

function render(v: unknown): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

/** A template whose values are escaped (arrays are joined, Html fragments kept, null/false dropped). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] as string;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] as string);
  return new Html(out);
}

/** Markup this code produced by other means (an SVG chart built from numbers). */
export function trusted(text: string): Html {
  return new Html(text);
}

/** A path under the UI's root with each segment percent-encoded (module paths keep their slashes). */
export function uiPath(root: string, ...parts: string[]): string {
  return `${root}${parts.map((p) => p.split('/').map(encodeURIComponent).join('/')).join('/')}`;
}
