// The request path as routes see it and as the upstream gets it. Upstreams read one path in many
// spellings: they decode %61 to 'a', merge '//', drop ';params' (Tomcat, Jetty, Spring), decode
// twice, take '\' for '/'. So the gateway routes, and forwards, one spelling (RFC 3986 §6.2.2):
// percent-encoded unreserved characters decoded, other escapes in uppercase hex, '//' merged; and
// refuses what it cannot make unambiguous: dot-segments, encoded '/' or '\', '\', encoded control
// characters, malformed escapes, a fragment, and (unless the route allows them) ';' path
// parameters and double encoding ('%25' before two hex digits). A path without '%', ';', '\', '#',
// '//' or '/.' is already in that form: one scan, no allocation.

export type PathRule =
  | 'not_origin_form'
  | 'dot_segment'
  | 'encoded_separator'
  | 'backslash'
  | 'encoded_control'
  | 'bad_percent_encoding'
  | 'fragment'
  | 'path_parameters'
  | 'double_encoding';

export interface PathRefusal {
  readonly rule: PathRule;
  readonly message: string;
}

const refusal = (rule: PathRule, message: string): PathRefusal => Object.freeze({ rule, message });

export const PATH_REFUSALS: Readonly<Record<PathRule, PathRefusal>> = {
  not_origin_form: refusal('not_origin_form', 'the request target must be a path starting with /'),
  dot_segment: refusal('dot_segment', "the path has a '.' or '..' segment (also encoded, or before ';')"),
  encoded_separator: refusal('encoded_separator', "the path has an encoded '/' or '\\' (%2F, %5C)"),
  backslash: refusal('backslash', "the path has a '\\', which some upstreams read as '/'"),
  encoded_control: refusal('encoded_control', 'the path has an encoded control character (%00-%1F, %7F)'),
  bad_percent_encoding: refusal('bad_percent_encoding', "the path has a '%' not followed by two hex digits"),
  fragment: refusal('fragment', "the request target has a fragment ('#')"),
  path_parameters: refusal('path_parameters', "the path has ';' parameters, which this route does not allow (allow_path_parameters)"),
  double_encoding: refusal('double_encoding', "the path is double encoded ('%25' before two hex digits), which this route does not allow (allow_double_encoding)"),
};

/** What a route may allow (bits): normalizePath refuses the rest. */
export const ALLOW_PATH_PARAMETERS = 1;
export const ALLOW_DOUBLE_ENCODING = 2;

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const SEMICOLON = 0x3b;
const BACKSLASH = 0x5c;
const HASH = 0x23;
const HEX = '0123456789ABCDEF';

/**
 * What only the slow path handles: '//', '/.', '%', ';', '\\', '#'. One regular expression test
 * is one scan with no allocation, and measured faster than a charCodeAt loop over the same
 * characters (20 M short paths: 0.56 s against 0.70 s of CPU).
 */
const NEEDS_REWRITE = /\/[/.]|[%;\\#]/;

/**
 * The normalized path, or the rule that refuses it. `allow`: ALLOW_* bits. `mergeSlashes`: merge
 * '//' (routing always does; a route may forward them unmerged).
 */
export function normalizePath(path: string, allow: number, mergeSlashes = true): string | PathRefusal {
  if (path.charCodeAt(0) !== SLASH) return PATH_REFUSALS.not_origin_form;
  return NEEDS_REWRITE.test(path) ? rewrite(path, allow, mergeSlashes) : path;
}

/** The slow path: rewrites into the normal form, or finds the rule that refuses the path. */
function rewrite(path: string, allow: number, mergeSlashes: boolean): string | PathRefusal {
  const n = path.length;
  let out = '/';
  /** Where the current segment begins in `out`, and where its ';' parameters begin (-1: none). */
  let segment = 1;
  let params = -1;
  // A route may allow these: reported only when nothing else refuses the path.
  let soft: PathRefusal | undefined;
  for (let i = 1; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c === SLASH) {
      if (isDotSegment(out, segment, params)) return PATH_REFUSALS.dot_segment;
      if (mergeSlashes && out.length === segment) continue; // empty segment: '//'
      out += '/';
      segment = out.length;
      params = -1;
    } else if (c === PERCENT) {
      const high = hexValue(path.charCodeAt(i + 1));
      const low = hexValue(path.charCodeAt(i + 2));
      if (high < 0 || low < 0) return PATH_REFUSALS.bad_percent_encoding;
      const byte = high * 16 + low;
      i += 2;
      if (byte === SLASH || byte === BACKSLASH) return PATH_REFUSALS.encoded_separator;
      if (byte < 0x20 || byte === 0x7f) return PATH_REFUSALS.encoded_control;
      if (isUnreserved(byte)) {
        out += String.fromCharCode(byte);
        continue;
      }
      if (byte === PERCENT && hexValue(path.charCodeAt(i + 1)) >= 0 && hexValue(path.charCodeAt(i + 2)) >= 0 && (allow & ALLOW_DOUBLE_ENCODING) === 0) {
        soft ??= PATH_REFUSALS.double_encoding;
      }
      out += `%${HEX[high]}${HEX[low]}`;
    } else if (c === BACKSLASH) {
      return PATH_REFUSALS.backslash;
    } else if (c === HASH) {
      return PATH_REFUSALS.fragment;
    } else {
      if (c === SEMICOLON) {
        if ((allow & ALLOW_PATH_PARAMETERS) === 0) soft ??= PATH_REFUSALS.path_parameters;
        if (params === -1) params = out.length;
      }
      out += path[i];
    }
  }
  if (isDotSegment(out, segment, params)) return PATH_REFUSALS.dot_segment;
  return soft ?? out;
}

/** Whether the segment of `out` from `start` is '.' or '..' before any ';' (Tomcat reads "..;x" as ".."). */
function isDotSegment(out: string, start: number, params: number): boolean {
  const end = params === -1 ? out.length : params;
  const length = end - start;
  if (length === 1) return out.charCodeAt(start) === DOT;
  if (length === 2) return out.charCodeAt(start) === DOT && out.charCodeAt(start + 1) === DOT;
  return false;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === DOT || byte === 0x5f || byte === 0x7e
  );
}

/** 0..15, or -1 for anything else (NaN past the end included). */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** The path as upstreams that drop ';' parameters read it: "/a;x/b;y" → "/a/b", and "/;x/b" → "/b". */
export function withoutPathParameters(path: string): string {
  let out = '';
  let inParams = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === SLASH) {
      inParams = false;
      if (out.charCodeAt(out.length - 1) === SLASH) continue; // a segment that was only parameters
      out += '/';
    } else if (c === SEMICOLON) inParams = true;
    else if (!inParams) out += path[i];
  }
  return out;
}

/** Whether a normalized path holds '%25' before two hex digits (decoded once, it still holds an escape). */
export function hasDoubleEncoding(path: string): boolean {
  for (let i = path.indexOf('%25'); i !== -1; i = path.indexOf('%25', i + 3)) {
    if (hexValue(path.charCodeAt(i + 3)) >= 0 && hexValue(path.charCodeAt(i + 4)) >= 0) return true;
  }
  return false;
}
