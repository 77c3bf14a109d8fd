/**
 * For the tests of the supervisor's interpreter-free machines (`HostedStep`, `HostedJob`): sends
 * one event to both the XState actor and the hosted machine and requires the same result.
 */
import { expect } from "vitest";

interface ActorLike {
  send(event: never): void;
  getSnapshot(): { status: string; value: unknown; context: unknown; output: unknown };
  getPersistedSnapshot(): unknown;
}

interface HostedLike {
  send(event: never): void;
  getSnapshot(): { status: string; value: unknown; context: unknown; output: unknown };
  persisted(): unknown;
}

/**
 * Sends `event` to both. A done actor takes no events (XState warns and drops them): the hosted
 * machine must ignore them too. Otherwise state, status, context, output, the effects recorded so
 * far (`ours`, `theirs`) and the persisted snapshot must agree.
 */
export function sendToBoth<E>(actor: ActorLike, hosted: HostedLike, event: E, ours: readonly unknown[], theirs: readonly unknown[]): void {
  if (actor.getSnapshot().status === "done") {
    const before = hosted.getSnapshot();
    hosted.send(event as never);
    expect(hosted.getSnapshot()).toBe(before);
    expect(ours).toEqual(theirs);
    return;
  }
  actor.send(event as never);
  hosted.send(event as never);
  const a = actor.getSnapshot();
  const b = hosted.getSnapshot();
  expect([b.value, b.status]).toEqual([a.value, a.status]);
  expect(b.context).toEqual(a.context);
  expect(b.output).toEqual(a.output);
  expect(ours).toEqual(theirs);
  expect(JSON.parse(JSON.stringify(hosted.persisted()))).toEqual(JSON.parse(JSON.stringify(actor.getPersistedSnapshot())));
}
