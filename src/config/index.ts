export { loadConfig, loadConfigText } from './load';
export { formatError, formatErrors } from './errors';
export { systemHostInfo } from './host';
export { schema } from './schema';
export type {
  AddressConfig,
  Config,
  ConfigError,
  GroupConfig,
  HostInfo,
  HostInterface,
  LoadResult,
  LogLevel,
} from './types';
