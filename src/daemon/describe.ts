/** One human-readable line per daemon message, for `nixdock watch` and `nixdock events` without --json. */
import { formatError, NixdockError, type SerializedError } from '../errors.js';
import { formatBytes, plainLine } from '../reporters/console.js';
import type { ServerMessage } from './protocol.js';

function errorText(error: SerializedError): string {
  return formatError(new NixdockError(error.code, error.message, error));
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
    case 'error':
      return errorText(message.error);
  }
}
