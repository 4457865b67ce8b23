// A PEM file as read for the TLS state, with the config field that named it, so that a problem found
// in its contents (a CRL that does not parse, a CA that cannot be listed) names the field and file.

export interface PemText {
  /** `client_auth.crl`, or `client_auth.crl[1]` for the second file of a list. */
  readonly field: string;
  readonly file: string;
  readonly pem: string;
}
