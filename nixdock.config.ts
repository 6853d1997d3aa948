/**
 * The example project at the root of this repository: `npx nixdock build` builds the `hello`
 * image from examples/store, a tiny directory laid out like a Nix store, so it works on a
 * machine without Nix. examples/nix/ shows the same with the real Nix store.
 */
import { defineConfig } from 'nixdock';

const hello = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';

export default defineConfig({
  store: { type: 'dir', path: 'examples/store' },
  formats: ['oci', 'docker-archive'],
  images: [
    {
      name: 'hello',
      // Store paths in contents are linked into the image root: /bin/hello → the store.
      contents: [hello],
      config: { Cmd: ['/bin/hello'], Labels: { 'org.opencontainers.image.title': 'hello from examples/store' } },
    },
  ],
});
