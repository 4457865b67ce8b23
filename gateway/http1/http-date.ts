// The Date header value (RFC 9110 §5.6.7), formatted at most once a second.
let second = -1;
let text = '';

export function httpDate(now = Date.now()): string {
  const s = Math.floor(now / 1000);
  if (s !== second) {
    second = s;
    text = new Date(s * 1000).toUTCString();
  }
  return text;
}
