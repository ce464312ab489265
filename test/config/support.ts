// Shared by the config tests: the ConfigError a load throws.
import { expect } from 'vitest';
import { ConfigError } from '../../src/config/index.js';

export function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
