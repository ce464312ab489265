// A setting that is wrong, with the message naming the key and the fix. Apart from the loader so
// that the command line can recognize it without loading the schema.
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
