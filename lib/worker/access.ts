/**
 * @module A route's `allow` / `deny` rules at work: the client address (client-address.ts) against the rules in the
 * order written, the first match deciding, as nginx's access module does; when none matches, a route with any
 * `allow` rule denies and a route with only `deny` rules allows. IPv4-mapped IPv6 clients are IPv4 here.
 */
import type { AccessRule } from '../config/types.js';
import { inBlock, parseBlock, parseIp, type Block } from '../util/cidr.js';

const scratch = new Uint32Array(4);

export class AccessList {
  readonly #blocks: readonly Block[];
  readonly #allow: readonly boolean[];
  readonly #otherwise: boolean;

  constructor(rules: readonly AccessRule[]) {
    this.#blocks = rules.map((r) => {
      const b = parseBlock(r.cidr);
      if (!b.ok) throw new Error(`access rule: ${b.message}`); // validated by the config loader
      return b.value;
    });
    this.#allow = rules.map((r) => r.allow);
    this.#otherwise = !rules.some((r) => r.allow);
  }

  allows(client: string): boolean {
    const family = parseIp(client, scratch);
    if (family !== 0) {
      const blocks = this.#blocks;
      for (let i = 0; i < blocks.length; i++) if (inBlock(blocks[i]!, family, scratch)) return this.#allow[i]!;
    }
    return this.#otherwise;
  }
}
