/**
 * The everyday dockerTools images as nixdock configs (see README.md): each one is built and run
 * in podman by test/cli/examples.test.ts. The store paths come from ./default.nix (raw
 * derivations, busybox as the shell); with nixpkgs, name `nixpkgs#bashInteractive` and friends instead.
 */
import { defineConfig } from 'nixdock';

export default defineConfig({
  store: 'nix',
  formats: ['oci', 'docker-archive'],
  images: [
    // dockerTools' "bash" example: a shell (busybox's bin/sh; with a store path in hand, `binSh`
    // links /bin/sh to it), /tmp, root's account.
    {
      name: 'shell',
      tag: 'latest',
      contents: ['./default.nix#busybox'],
      tmp: true,
      users: [{ name: 'root', uid: 0 }],
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin', 'SHELL=/bin/sh'] },
    },
    // A service with its own user and state directory (the redis/nginx shape).
    {
      name: 'counter',
      contents: ['./default.nix#busybox', './default.nix#counter'],
      users: [{ name: 'counter', uid: 1000, home: '/var/empty', createHome: false }],
      extraCommands: 'mkdir -p var/lib/counter',
      perms: [{ path: '/var/lib/counter', uid: 1000, gid: 1000, mode: '0700' }],
      config: { User: 'counter', Cmd: ['/bin/counter'], Volumes: ['/var/lib/counter'] },
    },
    // The Nix database (includeNixDB): nix-store --verify checks the image's own store.
    {
      name: 'nix-db',
      contents: ['./default.nix#busybox', './default.nix#nixStore'],
      includeNixDB: true,
      tmp: true,
      users: [{ name: 'root', uid: 0 }], // nix wants to know who it runs as
      config: { Cmd: ['/bin/sh', '-c', '/bin/nix-store --verify --check-contents && echo store verified'], Env: ['NIX_CONFIG=build-users-group ='] },
    },
    // Layered on top of another image: the shell above is the base (build `shell` first).
    {
      name: 'on-shell',
      fromImage: 'oci:./out/oci:latest',
      contents: ['./default.nix#counter'],
      // Only Env is inherited from the base (PATH, SHELL); yours wins per variable.
      config: { Env: ['GREETING=layered'], Cmd: ['/bin/sh', '-c', 'echo "$GREETING on $SHELL with PATH=$PATH"'] },
    },
    // A contents store path that is a symlink to a directory (layeredStoreSymlink).
    {
      name: 'store-symlink',
      contents: ['./default.nix#busyboxLink'],
      config: { Cmd: ['/bin/sh', '-c', 'echo linked through $(ls -d /bin)'] },
    },
    // A non-root user by name, with a home it owns; runAsRoot adds a file as root in its own layer.
    {
      name: 'non-root',
      contents: ['./default.nix#busybox'],
      users: [{ name: 'alice', uid: 1000 }],
      runAsRoot: 'echo "set up by root" > /etc/motd',
      config: { User: 'alice', WorkingDir: '/home/alice', Cmd: ['/bin/sh', '-c', 'touch notes && id -un && pwd && cat /etc/motd'] },
    },
    // dockerTools buildImage: copyToRoot copies the files (not links) into ONE layer on the base,
    // with their closure minus what the base has (busybox); uid/gid own the copied files.
    {
      name: 'copied',
      fromImage: 'oci:./out/oci:latest',
      copyToRoot: ['./default.nix#counter'],
      uid: 1000,
      gid: 1000,
      config: { Cmd: ['/bin/sh', '-c', 'echo copied: $(busybox stat -c "%u:%g %A" /bin/counter)'] },
    },
  ],
});
