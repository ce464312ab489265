// The real govulncheck, for checking the vulnerability database mirror against Go's own client.
// The binary comes from $GMP_GOVULNCHECK, else the per-machine test cache, where it is built
// with `go install` when absent (once per machine; scripts/test-ci.sh does it up front).
import { goToolBinary } from './gotool.js';

export const GOVULNCHECK_MODULE = 'golang.org/x/vuln/cmd/govulncheck@v1.9.0';

/** The govulncheck binary, built into the cache first when there is none. */
export function govulncheckBinary(): Promise<string> {
  return goToolBinary({ name: 'govulncheck', module: GOVULNCHECK_MODULE, envVar: 'GMP_GOVULNCHECK', goflags: '-buildvcs=false' });
}
