import { recordInventoryEvent } from '../core/ca/inventory-recorder';
import type { Inventory } from '../core/ports';

export const createHandler = (deps: { inventory: Inventory }) => (input: unknown) => recordInventoryEvent(deps, input);
