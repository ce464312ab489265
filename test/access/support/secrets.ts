// Every secret a test uses is registered here, and everything the code under test writes or
// says (audit lines, error messages, CLI output, files) is recorded; the last test of each file
// asserts that no secret, nor the Basic header that carries it, appears in any recorded output.
import { expect } from 'vitest';

export class SecretWatch {
  private readonly secrets = new Set<string>();
  private readonly outputs: Array<{ label: string; text: string }> = [];

  /** Registers a secret and hands it back. */
  secret<T extends string>(value: T): T {
    this.secrets.add(value);
    return value;
  }

  /** The Basic header for user:password, with the password and the header value registered as secrets. */
  basic(user: string, password: string): string {
    this.secret(password);
    const value = Buffer.from(`${user}:${password}`).toString('base64');
    this.secret(value);
    return `Basic ${value}`;
  }

  /** Records text the code under test produced. */
  output(label: string, text: string | undefined | null): void {
    if (text) this.outputs.push({ label, text });
  }

  /** Records an error's message (what a client or a log would see). */
  error(label: string, err: unknown): void {
    this.output(label, err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  }

  get outputCount(): number {
    return this.outputs.length;
  }

  assertClean(): void {
    const leaks: string[] = [];
    for (const { label, text } of this.outputs) {
      for (const s of this.secrets) {
        // Short strings (a 3-letter password) could match by accident in unrelated text; all test secrets are long.
        if (s.length >= 8 && text.includes(s)) leaks.push(`${label} contains secret ${s.slice(0, 4)}...`);
      }
    }
    expect(leaks).toEqual([]);
  }
}
