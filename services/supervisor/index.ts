/** The supervisor service. */
export { createSupervisor } from "./supervisor.service.js";
export type { Supervisor, SupervisorOptions } from "./supervisor.service.js";
export { placeTasks } from "./placement.js";
