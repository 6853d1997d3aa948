/**
 * The Nix example: the `hello` attribute of ./default.nix, realised with the nix CLI
 * (nix-build), its closure read from the real Nix store. Needs Nix: see README.md.
 */
import { defineConfig } from 'nixdock';

export default defineConfig({
  store: 'nix',
  formats: ['oci', 'docker-archive'],
  images: [
    {
      name: 'hello-nix',
      // The realised outputs are linked into the image root, so /bin/hello → the store.
      contents: ['./default.nix#hello'],
      config: { Cmd: ['/bin/hello'], Labels: { 'org.opencontainers.image.title': 'hello from examples/nix' } },
    },
  ],
});
