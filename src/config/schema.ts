/**
 * The user-facing INPUT shapes of nixdock.config.* and spec files, as zod 4 schemas. One
 * source for three things: validation (with NixdockErrors built by ./errors.ts), the editor
 * types of defineConfig/defineImage, and the JSON Schema of spec files (`nixdock schema`).
 *
 * The schemas only validate: no transforms and no defaults, so the JSON Schema describes exactly
 * what a user may write. ./normalize.ts applies defaults and turns relative paths absolute.
 * Every object is strict, so a typo'd field is an error (with a did-you-mean) instead of being ignored.
 */
import { z } from 'zod';
import { parseReference, validateTag, REFERENCE_GRAMMAR } from '../reference.js';
import { OUTPUT_FORMATS } from '../build/sinks.js';

/** OCI platform architectures (GOARCH values), the only ones written into image configs. */
export const ARCHITECTURES = ['amd64', 'arm64', 'arm', '386', 'ppc64le', 'riscv64', 's390x'] as const;
export const LAYER_BUDGET = { min: 2, max: 127, default: 100 } as const;

/** Extra details a custom issue carries to ./errors.ts (zod keeps `params` on custom issues). */
export interface IssueDetails {
  expected: string;
  hint?: string;
}

/** A refinement from a check that returns error text (or undefined when the value is fine). */
function rule<T>(check: (value: T) => string | undefined, details: IssueDetails) {
  return (value: T, ctx: z.RefinementCtx<T>): void => {
    const problem = check(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: value, params: details });
  };
}

/** Undefined when `ref` parses, else the parser's message. */
function referenceProblem(ref: string): string | undefined {
  try {
    parseReference(ref);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const timestamp = (what: string) =>
  z
    .string()
    .superRefine(
      rule((v: string) => (v === 'now' || (RFC3339.test(v) && !Number.isNaN(Date.parse(v))) ? undefined : `\`${v}\` is not an RFC 3339 timestamp`), {
        expected: 'an RFC 3339 timestamp like "2024-05-01T12:00:00Z", or "now"',
        hint: '"now" makes every build differ; a fixed timestamp keeps digests reproducible.',
      }),
    )
    .describe(what);

const stringList = (what: string) => z.array(z.string()).describe(what);
const emptyObject = z.strictObject({}).describe('Always {} (the OCI config format)');

// ─────────────────────────── run on save ───────────────────────────

const PORT_MAPPING = /^(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:\d{1,5}(?:-\d{1,5})?:)?\d{1,5}(?:-\d{1,5})?(?:\/(?:tcp|udp|sctp))?$/;

const runSchema = z
  .strictObject({
    engine: z.enum(['podman', 'docker']).describe('The engine each build is loaded into and run with'),
    args: stringList('Extra `ENGINE run` arguments, placed before the image, e.g. ["--env", "PORT=8080"]').optional(),
    ports: z
      .array(z.string().regex(PORT_MAPPING, 'not a port mapping'))
      .optional()
      .describe('Published ports (`--publish`): "8080", "8080:80", "127.0.0.1:8080:80/tcp"'),
  })
  .describe('`nixdock watch` loads each successful build into the engine and (re)starts a container from it, streaming its output; the container stops when watch exits');

// ─────────────────────────── contents ───────────────────────────

const contentsEntrySchema = z
  .union([
    z
      .string()
      .min(1)
      .describe(
        'A store path ("/nix/store/…"), a Nix file installable ("./default.nix" or "./image.nix#attr"), a flake reference (".#pkg", "nixpkgs#hello", "github:o/r#pkg", "path:./x#pkg") or a local directory ("./rootfs/") copied into the image root',
      ),
    z.strictObject({ storePath: z.string().describe('An existing store path, e.g. /nix/store/<hash>-hello') }).describe('A store path'),
    z
      .strictObject({
        nix: z.string().describe('A .nix file, relative to the file that names it'),
        attr: z.string().optional().describe('Attribute to build from it (nix-build -A); absent: the file itself'),
      })
      .describe('A Nix file installable realised with nix-build'),
    z.strictObject({ flake: z.string().describe('A flake reference with attribute, e.g. ".#app" or "github:o/r#pkg"') }).describe('A flake installable realised with nix build'),
    z.strictObject({ dir: z.string().describe('An existing directory, relative to the file that names it') }).describe('A local directory copied into the image root'),
  ], { error: 'a string (store path, .nix file, flake reference or ./directory) or one of {storePath}, {nix, attr?}, {flake}, {dir}' })
  .describe('One thing to put into the image');

// ─────────────────────────── runtime config ───────────────────────────

const ENV_ENTRY = /^[^=]+=/;
const PORT = /^\d{1,5}(?:\/(?:tcp|udp|sctp))?$/;

const containerConfigSchema = z
  .strictObject({
    Cmd: stringList('Default arguments (exec form); store paths named here join the closure'),
    Entrypoint: stringList('Executable and its first arguments (exec form)'),
    Env: z
      .union([
        z.array(z.string().regex(ENV_ENTRY, { error: 'an Env entry must look like "NAME=value"' })).describe('Entries like "PATH=/bin"'),
        z.record(z.string().regex(/^[^=]+$/), z.string()).describe('NAME → value'),
      ])
      .describe('Environment variables: ["K=V", …] or {K: "V"}'),
    WorkingDir: z.string().describe('Working directory of the container process'),
    User: z.string().describe('user, uid, user:group or uid:gid'),
    ExposedPorts: z
      .union([
        z.array(z.string().regex(PORT, { error: 'a port must look like "8080", "8080/tcp" or "53/udp"' })).describe('Ports like "8080/tcp"'),
        z.record(z.string().regex(PORT), emptyObject).describe('The OCI form: {"8080/tcp": {}}'),
      ])
      .describe('Ports the container listens on'),
    Labels: z.record(z.string(), z.string()).describe('Image labels (org.opencontainers.image.* …)'),
    Volumes: z
      .union([stringList('Paths like "/data"'), z.record(z.string(), emptyObject).describe('The OCI form: {"/data": {}}')])
      .describe('Mount points'),
    StopSignal: z.string().describe('Signal that stops the container, e.g. SIGTERM'),
    Healthcheck: z
      .strictObject({
        Test: stringList('["CMD", "arg", …], ["CMD-SHELL", "cmd"] or ["NONE"]'),
        Interval: z.number().int().min(0).describe('Nanoseconds between checks'),
        Timeout: z.number().int().min(0).describe('Nanoseconds before a check counts as failed'),
        StartPeriod: z.number().int().min(0).describe('Nanoseconds of start-up grace'),
        Retries: z.number().int().min(0).describe('Failures before the container is unhealthy'),
      })
      .partial()
      .describe('Health check (Docker format)'),
  })
  .partial()
  .describe('Runtime configuration written into the image config (OCI field names)');

// ─────────────────────────── base image ───────────────────────────

const PIN_HINT = 'Pin the base image by digest (`name@sha256:…`), or write {registry: "name:tag", allowTag: true} to accept a moving tag.';

function fromImageStringProblem(value: string): string | undefined {
  if (value.startsWith('oci:')) return value.length > 4 ? undefined : 'an "oci:" base image needs a directory: "oci:DIR" or "oci:DIR:TAG"';
  if (value.startsWith('docker-archive:')) return value.length > 15 ? undefined : 'a "docker-archive:" base image needs a file path';
  const problem = referenceProblem(value);
  if (problem) return problem;
  return parseReference(value).digest ? undefined : `the registry base image \`${value}\` is not pinned by digest`;
}

/** A user or group name as /etc/passwd and /etc/group allow it. */
const posixName = z.string().regex(/^[a-z_][a-z0-9_.-]*$/i, 'a user or group name: letters, digits, _ . -');

const fromImageSchema = z
  .union([
    z
      .string()
      .superRefine(
        rule(fromImageStringProblem, {
          expected: '"oci:DIR[:TAG]", "docker-archive:PATH" or a registry reference pinned by digest (name@sha256:…)',
          hint: PIN_HINT,
        }),
      )
      .describe('"oci:DIR[:TAG]", "docker-archive:PATH" or a registry reference pinned by digest'),
    z
      .strictObject({
        registry: z.string().describe('Registry reference, e.g. "docker.io/library/alpine@sha256:…"'),
        allowTag: z.boolean().optional().describe('Accept a reference without a digest (the base may change under you). Default false'),
      })
      .superRefine((v, ctx) => {
        const problem = referenceProblem(v.registry) ?? (v.allowTag || parseReference(v.registry).digest ? undefined : `the registry base image \`${v.registry}\` is not pinned by digest`);
        if (problem) ctx.addIssue({ code: 'custom', message: problem, input: v.registry, path: ['registry'], params: { expected: 'a reference pinned by digest', hint: PIN_HINT } });
      })
      .describe('A base image from a registry'),
    z.strictObject({ dockerArchive: z.string().describe('Path of a docker-archive tar, relative to the file that names it') }).describe('A base image from a docker-archive file'),
    z
      .strictObject({
        oci: z.string().describe('OCI layout directory, relative to the file that names it'),
        tag: z.string().optional().describe('Tag (org.opencontainers.image.ref.name) to use when the layout holds several images'),
      })
      .describe('A base image from an OCI layout directory'),
  ], { error: '"oci:DIR[:TAG]", "docker-archive:PATH", a pinned registry reference, or one of {registry, allowTag?}, {dockerArchive}, {oci, tag?}' })
  .describe('Base image whose layers come first (dockerTools fromImage)');

// ─────────────────────────── image spec ───────────────────────────

function nameProblem(name: string): string | undefined {
  const problem = referenceProblem(name);
  if (problem) return problem;
  const ref = parseReference(name);
  if (ref.tag !== undefined || ref.digest !== undefined) return `the image name \`${name}\` includes a tag or digest; give the tag in \`tag\``;
  return undefined;
}

export const imageSpecSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint: the JSON Schema of spec files (ignored by nixdock)'),
    name: z
      .string()
      .superRefine(rule(nameProblem, { expected: `an image name: ${REFERENCE_GRAMMAR} (no tag here)`, hint: 'Use lowercase, e.g. "hello" or "ghcr.io/me/hello".' }))
      .describe('Image name (repository, optionally with registry), e.g. "hello" or "ghcr.io/me/hello"'),
    tag: z
      .string()
      .superRefine(rule(validateTag, { expected: 'up to 128 of [A-Za-z0-9_.-], not starting with "." or "-"' }))
      .optional()
      .describe('Image tag. Absent: derived from the image content (stable across machines)'),
    contents: z.array(contentsEntrySchema).optional().describe('What goes into the image: store paths, Nix installables, local directories'),
    copyToRoot: z.array(contentsEntrySchema).optional().describe('dockerTools buildImage\'s copyToRoot, instead of contents: the entries\' files are copied (not linked) into the image root and, with their closure (minus store paths the base image has), make ONE layer on top of fromImage; uid/gid own the copied root files, the store paths stay 0:0'),
    keepContentsDirlinks: z.boolean().optional().describe('With copyToRoot: keep symlinks to directories as symlinks (rsync -K). Default false: they are copied as the directories they point to (rsync -k), as in dockerTools'),
    config: containerConfigSchema.optional(),
    maxLayers: z
      .number()
      .int()
      .min(LAYER_BUDGET.min)
      .max(LAYER_BUDGET.max)
      .optional()
      .describe('Total layer budget: base + store + customisation layers. 2..127, default 100 (containerd/overlayfs cannot mount more than 127)'),
    layering: z.enum(['stable', 'popularity']).optional().describe('How store paths are grouped into layers. Default "stable"; "popularity" is dockerTools\' classic split'),
    created: timestamp('Image creation time: RFC 3339 or "now". Default 1970-01-01T00:00:01Z').optional(),
    mtime: timestamp('Modification time of every file in the layers: RFC 3339 or "now". Default 1970-01-01T00:00:01Z whatever `created` is, as in dockerTools').optional(),
    uid: z.number().int().min(0).optional().describe('Owner uid of store layer entries (with copyToRoot: of the copied root files). Default 0'),
    gid: z.number().int().min(0).optional().describe('Owner gid of store layer entries (with copyToRoot: of the copied root files). Default 0'),
    uname: z.string().min(1).optional().describe('Owner user name of store layer entries. Default "root"'),
    gname: z.string().min(1).optional().describe('Owner group name of store layer entries. Default "root"'),
    architecture: z.enum(ARCHITECTURES).optional().describe('OCI architecture. Default: the host\'s'),
    variant: z.string().optional().describe('OCI architecture variant: v8 for arm64 (default), v5/v6/v7 for arm (default v7), v1..v4 for amd64'),
    extraCommands: z.string().optional().describe('dockerTools extraCommands: bash (set -euo pipefail) run in the customisation tree (cwd /build/root) before it is packed, in a bubblewrap sandbox: store read-only, nothing outside the tree writable, a builder\'s clean environment. Store paths it writes into the tree join the closure. In a JSON spec file only when the config sets specs.allowCommands'),
    runAsRoot: z.string().optional().describe('dockerTools runAsRoot: a script run as root with /bin/sh -e, chrooted into the image (base layers + contents, the store read-only), in a bubblewrap sandbox (user namespace, no network); what it changes becomes one more layer, deletions as OCI whiteouts. Needs /bin/sh in the image. In a JSON spec file only when the config sets specs.allowCommands'),
    fakeRootCommands: z.string().optional().describe('dockerTools fakeRootCommands: bash run after extraCommands under fakeroot, in the same sandbox; its chown/chmod/mknod effects are recorded in the customisation layer\'s headers (needs the fakeroot package). In a JSON spec file only when the config sets specs.allowCommands'),
    enableFakechroot: z.boolean().optional().describe('dockerTools enableFakechroot: fakeRootCommands see the image root as / (chrooted with bubblewrap, the store read-only, the image\'s /bin/sh and tools) instead of running in it under fakeroot. As root their chown/chmod are real and recorded; unprivileged they run as uid 0 of a user namespace, where chown to other ids fails. Default false'),
    perms: z
      .array(
        z.strictObject({
          path: z.string().regex(/^\//, 'an absolute path in the image').describe('Absolute path in the image, e.g. "/home/alice"'),
          uid: z.number().int().min(0).optional().describe('Owner uid. Default: unchanged (0)'),
          gid: z.number().int().min(0).optional().describe('Owner gid. Default: unchanged (0)'),
          mode: z.string().regex(/^0?[0-7]{3,4}$/, 'octal permission bits such as "0700"').optional().describe('Permission bits in octal, e.g. "0700" or "1777"'),
          recursive: z.boolean().optional().describe('Also everything below path. Default false'),
        }),
      )
      .optional()
      .describe('Owners and modes of customisation layer paths, recorded in its tar headers without privileges (a declarative alternative to fakeRootCommands chown/chmod); applied last'),
    users: z
      .array(
        z.strictObject({
          name: posixName.describe('User name'),
          uid: z.number().int().min(0).describe('User id'),
          gid: z.number().int().min(0).optional().describe('Primary group id. Default: the uid (a group named after the user is added when no group has it)'),
          home: z.string().regex(/^\//, 'an absolute path').optional().describe('Home directory. Default /root for uid 0, else /home/NAME'),
          shell: z.string().optional().describe('Login shell. Default /bin/sh'),
          description: z.string().regex(/^[^:\n]*$/, 'no ":" or newline').optional().describe('GECOS field'),
          createHome: z.boolean().optional().describe('Create the home directory, owned by the user (mode 0755). Default true'),
        }),
      )
      .optional()
      .describe('Users written to /etc/passwd and /etc/shadow (locked passwords), with home directories owned by them; root and nobody are always there (dockerTools shadowSetup / fakeNss)'),
    groups: z
      .array(
        z.strictObject({
          name: posixName.describe('Group name'),
          gid: z.number().int().min(0).describe('Group id'),
          members: z.array(posixName).optional().describe('Supplementary members (user names)'),
        }),
      )
      .optional()
      .describe('Groups written to /etc/group (with users, root, nogroup and each user\'s primary group)'),
    binSh: z.string().optional().describe('A shell in the store linked as /bin/sh, e.g. "/nix/store/…-bash-5.2/bin/bash" (dockerTools.binSh); it joins the closure'),
    usrBinEnv: z.string().optional().describe('An env in the store linked as /usr/bin/env, e.g. "/nix/store/…-coreutils-9.5/bin/env" (dockerTools.usrBinEnv); it joins the closure'),
    caCertificates: z.string().optional().describe('A cacert store path (or a CA bundle file in the store) linked at /etc/ssl/certs/ca-certificates.crt, /etc/ssl/certs/ca-bundle.crt and /etc/pki/tls/certs/ca-bundle.crt (dockerTools.caCertificates)'),
    tmp: z.boolean().optional().describe('Create /tmp with mode 1777. Default false'),
    includeStorePaths: z.boolean().optional().describe('Put the store paths into the image. Default true; false keeps only the customisation layer'),
    includeNixDB: z.boolean().optional().describe('Add a Nix database registering the closure. Default false'),
    fromImage: fromImageSchema.optional(),
    fromImageName: z.string().optional().describe('dockerTools fromImageName: with a docker-archive fromImage holding several images (mergeImages, docker save a b), the one whose RepoTags have this name. Default: the first image'),
    fromImageTag: z.string().optional().describe('dockerTools fromImageTag: the tag of that image (with or without fromImageName)'),
    nixpkgsConf: z.string().optional().describe('A nixpkgs streamLayeredImage conf.json used as is (relative to the file that names it)'),
    compression: z.enum(['none', 'gzip', 'zstd']).optional().describe('Layer compression in OCI layouts and pushes. Default "none"'),
    push: z
      .array(z.string().superRefine(rule(referenceProblem, { expected: REFERENCE_GRAMMAR })))
      .optional()
      .describe('Registry references pushed after each build'),
    load: z.array(z.enum(['podman', 'docker'])).optional().describe('Engines to load the image into after each build'),
    watch: stringList('Extra files or globs the daemon watches for this image (relative to the file that names them)').optional(),
    run: runSchema.optional(),
  })
  .describe('One image (dockerTools words: name, tag, contents, config, maxLayers, …)')
  .meta({ id: 'ImageSpec', title: 'nixdock image spec' });

// ─────────────────────────── config ───────────────────────────

const storeSchema = z
  .union([
    z.literal('nix').describe('The Nix store through the nix CLI'),
    z
      .strictObject({
        type: z.literal('nix'),
        storeDir: z.string().optional().describe('Store directory. Default /nix/store'),
      })
      .describe('The Nix store through the nix CLI'),
    z
      .strictObject({
        type: z.literal('dir'),
        path: z.string().describe('Directory laid out like a store (relative to the config file)'),
        storeDir: z.string().optional().describe('The store directory its paths claim to be in. Default /nix/store'),
      })
      .describe('A directory laid out like a store'),
  ], { error: '"nix", {type: "nix", storeDir?} or {type: "dir", path, storeDir?}' })
  .describe('Where store paths come from. Default "nix"');

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint (ignored by nixdock)'),
    images: z.array(imageSpecSchema).optional().describe('Images defined inline'),
    specs: z
      .union([
        stringList('Globs of spec files (relative to the config file), each holding one image, {images: […]} or an array'),
        z
          .strictObject({
            files: stringList('Globs of spec files (relative to the config file), each holding one image, {images: […]} or an array'),
            allowCommands: z.boolean().optional().describe('JSON spec files may carry extraCommands/fakeRootCommands/runAsRoot (shell, run sandboxed). Default false: a JSON spec is data, and one with commands is refused'),
          })
          .describe('Spec-file globs and whether JSON specs may carry commands'),
      ], { error: '["glob", …] or {files: ["glob", …], allowCommands?: boolean}' })
      .optional(),
    store: storeSchema.optional(),
    outDir: z.string().optional().describe('Output directory. Default "out"'),
    cacheDir: z.string().optional().describe('Cache directory (index, blobs, daemon token). Default ".nixdock"'),
    formats: z.array(z.enum(OUTPUT_FORMATS)).optional().describe('Default output formats of `nixdock build`. Default ["oci"]'),
    daemon: z
      .strictObject({
        host: z.string().optional().describe('Address the daemon listens on. Default 127.0.0.1'),
        port: z.number().int().min(0).max(65535).optional().describe('Port. Default 7391'),
        debounceMs: z.number().int().min(0).optional().describe('Quiet period before a change triggers a build. Default 150'),
        watch: stringList('Extra globs to watch (relative to the config file)').optional(),
      })
      .optional()
      .describe('`nixdock watch` settings'),
    cache: z
      .strictObject({
        from: stringList('Registry references whose layers pushes may reuse without tarring (like --cache-from), e.g. ["ghcr.io/me/app:latest"]').optional(),
        registry: z.string().optional().describe('A registry repository (host/repo) holding the shared recipe → blob cache: pushes read it and add to it (like --cache-from/--cache-to)'),
      })
      .optional()
      .describe('The registry as a shared layer cache for a fleet of machines'),
    gc: z
      .strictObject({
        keepBuilds: z.number().int().min(0).optional().describe('Builds per image kept by `nixdock gc` (and its OCI layout entries). Default 5'),
        afterBuild: z.boolean().optional().describe('`nixdock watch` runs gc after each successful build, so disk use stays bounded. Default true'),
        cacheDays: z.number().positive().optional().describe('Cached base-image files (decompressed archives, layer sizes, pulled images) that no kept build uses go after this many days unused. Default 7'),
      })
      .optional()
      .describe('Garbage collection'),
  })
  .describe('nixdock configuration');

/** A spec file: one image, {images: […]}, or an array of images. */
export const specFileImagesSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Editor hint (ignored by nixdock)'),
    images: z.array(imageSpecSchema).describe('The images of this file'),
  })
  .describe('Several images');

export const specFileSchema = z
  .union([imageSpecSchema, specFileImagesSchema, z.array(imageSpecSchema).describe('Several images')])
  .describe('A nixdock spec file: one image, {images: […]}, or an array of images');

export type ImageSpecInput = z.input<typeof imageSpecSchema>;
export type NixdockConfigInput = z.input<typeof configSchema>;
export type ContentsEntryInput = z.input<typeof contentsEntrySchema>;
export type FromImageInput = z.input<typeof fromImageSchema>;
export type StoreInput = z.input<typeof storeSchema>;

/** JSON Schema (draft 2020-12) of spec files, with descriptions on every field. */
export function specJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(specFileSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://nixdock.dev/schema/spec.json',
    title: 'nixdock spec file',
  };
}
