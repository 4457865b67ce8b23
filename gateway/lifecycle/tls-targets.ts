// The two kinds of reload target: a terminate listener (server certificates, client trust bundle and
// CRL; new handshakes use the new state, established connections keep theirs, and those a new CRL
// revokes are closed) and an upstream (the gateway's client certificate, the upstream trust bundle and
// CRL; new connections use the new identity, pooled ones are retired gracefully).
//
// A resumed TLS session skips certificate verification (OpenSSL's, and Node's checkServerIdentity on
// the client side), so a peer whose certificate was revoked, or whose CA was dropped from the bundle,
// could come back on an old session. Hence, on listeners: sessions are partitioned by trust bundle
// (the session id context) and the gateway re-checks CRL and expiry at every handshake, resumed or not
// (a map lookup; a CRL update then costs no full-handshake storm). Toward upstreams, where Node offers
// no hook on resumption: the session cache key covers bundle, CRL and CRL enforcement.
import { createHash, type X509Certificate } from 'node:crypto';
import { trustFiles } from '../config/peer-trust.js';
import { crlFiles, type Listener, type PeerTrust, type Upstream } from '../config/types.js';
import { buildPeerTrustStore, type TrustBundlePem } from '../identity/trust-domain-store.js';
import { readListenerTlsFiles, readUpstreamTlsFiles } from '../runtime/read-tls-files.js';
import { buildServerTlsState, type ServerTlsFiles, type ServerTlsState, type TlsTuning } from '../terminate/server-tls-state.js';
import type { TerminateListener } from '../terminate/terminate-listener.js';
import type { UpstreamCluster } from '../upstream/upstream-cluster.js';
import { buildUpstreamTlsState, type UpstreamTlsFiles, type UpstreamTlsState } from '../upstream/upstream-tls-state.js';
import { closeRevokedConnections, RevocationList } from './revocation.js';
import { checkCrls, checkPresentedChain, checkTrustBundle, type LoadedCertificate, type LoadedCrl, type Source } from './tls-material.js';
import type { CrlEnforcement, TlsTarget, ValidatedMaterial } from './tls-reloader.js';

/** An upstream certificate refused by a CRL the gateway enforces itself (stale CRL, policy `enforce`). */
export class UpstreamRevokedError extends Error {
  // OpenSSL's own code for a revoked certificate, so the request path maps it like OpenSSL's refusal.
  readonly code = 'CERT_REVOKED';
}

/** The files as OpenSSL gets them: without the CRLs when the gateway enforces them (stale, policy `enforce`). */
function forOpenssl<F extends { crlPem?: string; crls?: readonly unknown[] }>(files: F, enforcement: CrlEnforcement): F {
  return enforcement === 'gateway' ? { ...files, crlPem: undefined, crls: undefined } : files;
}

/** A session partition key: sessions made under other trust material never resume. Same files, same key, on every worker and replica. */
function partition(base: string, ...material: string[]): string {
  const hash = createHash('sha256').update(base);
  for (const part of material) hash.update('\0').update(part);
  return hash.digest('hex');
}

/** The trust files as read, with the config field and file of each. */
function trustSources(field: string, trust: PeerTrust, files: readonly TrustBundlePem[]): (Source & TrustBundlePem)[] {
  return trustFiles(trust).map((t, i) => ({ field: `${field}.${t.field}`, file: t.file, ...files[i]! }));
}

/** Session partition material of the bundles: the text of each, with its trust domain where it has one. */
function trustMaterial(files: readonly TrustBundlePem[]): string[] {
  return files.flatMap((t) => (t.trustDomain === undefined ? [t.pem] : [t.trustDomain, t.pem]));
}

async function validateTrust(
  certificates: LoadedCertificate[],
  bundles: readonly (Source & TrustBundlePem)[],
  crl: readonly (Source & { pem: string })[] | undefined,
  now: number,
): Promise<ValidatedMaterial> {
  const cas: X509Certificate[] = [];
  const warnings: string[] = [];
  for (const bundle of bundles) {
    const trust = checkTrustBundle(bundle, bundle.pem, now);
    cas.push(...trust.cas);
    warnings.push(...trust.warnings);
  }
  let crls: LoadedCrl[] = [];
  if (crl && crl.length > 0) {
    const checked = await checkCrls(crl, cas, now);
    crls = checked.crls;
    warnings.push(...checked.warnings);
  }
  return {
    certificates: [...certificates, ...cas.map((cert) => ({ role: 'trust_bundle' as const, cert }))],
    revocation: new RevocationList(crls),
    peerTrust: await buildPeerTrustStore(bundles),
    warnings,
  };
}

export function listenerTarget(
  index: number,
  listener: Listener & { tls: NonNullable<Listener['tls']> },
  terminate: TerminateListener,
  opts: { tuning: () => TlsTuning; closeRevokedConnections: boolean },
): TlsTarget<ServerTlsFiles, ServerTlsState> {
  const { tls } = listener;
  const field = `listeners[${index}].tls`;
  return {
    name: `listener/${listener.name}`,
    field,
    paths: [...tls.certificates.flatMap((c) => [c.cert, c.key]), ...trustFiles(tls.clientAuth).map((t) => t.file), ...crlFiles(tls.clientAuth.crl)],
    read: () => readListenerTlsFiles(field, tls),
    contents: (files) => [...files.certificates.flatMap((c) => [c.certPem, c.keyPem]), ...files.trust.map((t) => t.pem), files.crlPem],
    validate(files, now) {
      const certificates: LoadedCertificate[] = [];
      files.certificates.forEach((c, i) => {
        const configured = tls.certificates[i]!;
        const chain = checkPresentedChain(
          { field: `${field}.certificates[${i}].cert`, file: configured.cert, pem: c.certPem },
          { field: `${field}.certificates[${i}].key`, file: configured.key, pem: c.keyPem },
          now,
        );
        for (const cert of chain) certificates.push({ role: 'server', cert });
      });
      return validateTrust(certificates, trustSources(`${field}.client_auth`, tls.clientAuth, files.trust), files.crls, now);
    },
    build(files, { revocation, peerTrust }, enforcement) {
      const tuning = opts.tuning();
      const sessionIdContext = partition(tuning.sessionIdContext, ...trustMaterial(files.trust)).slice(0, 32);
      const state = buildServerTlsState(tls, forOpenssl(files, enforcement), peerTrust, { ...tuning, sessionIdContext });
      // OpenSSL refuses full handshakes once a CRL it holds is stale: resumed ones are refused too.
      const staleAt = enforcement === 'gateway' ? undefined : revocation.nextUpdateMs;
      return {
        ...state,
        admit: (identity) => {
          const now = Date.now();
          if (staleAt !== undefined && now >= staleAt) return 'crl_stale';
          if (identity.notAfter.getTime() <= now) return 'expired';
          return revocation.revokesChain(identity.cert) ? 'revoked' : undefined;
        },
      };
    },
    swap: (state) => terminate.replaceTls(state),
    revoked(list) {
      if (opts.closeRevokedConnections) closeRevokedConnections(listener.name, terminate.served, list);
    },
  };
}

export function upstreamTarget(index: number, upstream: Upstream & { tls: NonNullable<Upstream['tls']> }, cluster: UpstreamCluster): TlsTarget<UpstreamTlsFiles, UpstreamTlsState> {
  const { tls } = upstream;
  const field = `upstreams[${index}].tls`;
  return {
    name: `upstream/${upstream.name}`,
    field,
    paths: [tls.cert, tls.key, ...trustFiles(tls).map((t) => t.file), ...crlFiles(tls.crl)],
    read: () => readUpstreamTlsFiles(field, tls),
    contents: (files) => [files.certPem, files.keyPem, ...files.trust.map((t) => t.pem), files.crlPem],
    validate(files, now) {
      const chain = checkPresentedChain({ field: `${field}.cert`, file: tls.cert, pem: files.certPem }, { field: `${field}.key`, file: tls.key, pem: files.keyPem }, now);
      return validateTrust(
        chain.map((cert) => ({ role: 'client' as const, cert })),
        trustSources(field, tls, files.trust),
        files.crls,
        now,
      );
    },
    build(files, { revocation, peerTrust }, enforcement) {
      const state = buildUpstreamTlsState(tls, forOpenssl(files, enforcement), peerTrust, upstream.endpoints[0]!.host);
      const checkIdentity = state.checkIdentity;
      return {
        ...state,
        clientCertFingerprint: partition(state.clientCertFingerprint, ...trustMaterial(files.trust), files.crlPem ?? '', enforcement),
        // Runs on full handshakes only; the partition above keeps sessions from outliving the checks they passed.
        checkIdentity: (host, cert) =>
          revocation.revokesPeerChain(cert) ? new UpstreamRevokedError(`upstream certificate serial ${cert.serialNumber} is revoked`) : checkIdentity(host, cert),
      };
    },
    // Retires the old pools gracefully: in-flight requests finish, new ones connect with the new state.
    swap: (state) => cluster.replaceTlsState(state),
  };
}
