/** One human-readable line per daemon message, for `nixdock watch` and `nixdock events` without --json. */
import { formatError, NixdockError, type SerializedError } from '../errors.js';
import { formatBytes, plainLine } from '../reporters/console.js';
import type { ContainerStatus, ServerMessage } from './protocol.js';

function errorText(error: SerializedError): string {
  return formatError(new NixdockError(error.code, error.message, error));
}

function containerLine(image: string, c: ContainerStatus): string {
  switch (c.state) {
    case 'started':
      return `${image}: container ${c.name} started from ${c.ref}`;
    case 'stopped':
      return `${image}: container ${c.name} stopped`;
    case 'exited':
      return `${image}: container ${c.name} exited${c.exitCode === undefined ? '' : ` with code ${c.exitCode}`}`;
    case 'failed':
      return `${image}: container ${c.name} did not start:\n${c.error ? errorText(c.error) : ''}`;
  }
}

export function describeMessage(message: ServerMessage): string | undefined {
  switch (message.type) {
    case 'hello':
      return `daemon ${message.version} (protocol ${message.protocol}, pid ${message.pid}) for ${message.configFile}: ${message.images.join(', ') || 'no images'}`;
    case 'snapshot':
      return message.images.map((i) => `${i.name}: ${i.state}${i.lastBuild ? `, last build ${i.lastBuild.status}` : ''}`).join('\n') || undefined;
    case 'event':
      return plainLine(message.event);
    case 'change':
      return `changed: ${message.files.join(', ')}${message.config ? ' (reloading config)' : ''}`;
    case 'config-error':
      return `config error, keeping the last good config:\n${errorText(message.error)}`;
    case 'config-reloaded':
      return `config reloaded: ${message.images.join(', ') || 'no images'}`;
    case 'history':
      return message.builds.map((b) => `${b.image} #${b.id} ${b.status}`).join('\n') || undefined;
    case 'gc':
      return `gc: removed ${message.images.length ? `${message.images.join(', ')} and ` : ''}${message.blobs} blob file(s), ${formatBytes(message.bytes)}`;
    case 'container':
      return containerLine(message.image, message.container);
    case 'container-log':
      return `${message.image} │ ${message.line}`;
    case 'error':
      return errorText(message.error);
  }
}
