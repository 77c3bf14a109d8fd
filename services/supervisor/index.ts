/** The supervisor service. */
export { createSupervisor, failuresFirst } from "./supervisor.service.js";
export type { Supervisor, SupervisorOptions } from "./supervisor.service.js";
export { placeTasks } from "./placement.js";
