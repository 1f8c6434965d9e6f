// An OCI image made offline (make image, and the e2e tests' pause image): a one-layer root
// filesystem packed as an OCI image layout tarball (oci-layout, index.json, blobs/sha256/…),
// the way `ctr images import` takes it.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const sh = (cmd: string, args: string[]): void => {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Packs rootfsDir (its contents as /) into an OCI layout tarball at out, named `name`. */
export function ociImage(rootfsDir: string, work: string, name: string, entrypoint: string[], out: string): void {
  const layout = `${work}/layout`;
  mkdirSync(`${layout}/blobs/sha256`, { recursive: true });
  sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfsDir, '-cf', `${work}/layer.tar`, '.']);
  const layer = readFileSync(`${work}/layer.tar`);
  const blob = (b: Buffer): string => {
    const d = sha(b);
    writeFileSync(`${layout}/blobs/sha256/${d}`, b);
    return d;
  };
  const layerDigest = blob(layer);
  const config = Buffer.from(JSON.stringify({
    architecture: process.arch === 'x64' ? 'amd64' : process.arch, os: 'linux',
    config: { Entrypoint: entrypoint },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
  }));
  const configDigest = blob(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }],
  }));
  const manifestDigest = blob(manifest);
  writeFileSync(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(`${layout}/index.json`, JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${manifestDigest}`, size: manifest.length,
      annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() },
    }],
  }));
  sh('tar', ['-C', layout, '-cf', out, '.']);
}
