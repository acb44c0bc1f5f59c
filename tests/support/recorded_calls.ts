/**
 * An adapter whose operations are recorded by name, in call order (`drain` left out): for
 * tests that check which backend calls a client makes.
 *
 * @module
 */

/** `adapter` behind a proxy that appends each method's name to `calls` when called. */
export function recordCalls<T extends object>(adapter: T): { adapter: T; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(adapter, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || typeof property !== "string") return value;
      return (...args: unknown[]) => {
        if (property !== "drain") calls.push(property);
        return value.apply(target, args);
      };
    },
  });
  return { adapter: proxy, calls };
}
