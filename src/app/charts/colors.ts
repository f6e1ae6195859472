// Colour scales the panels share. Categories use d3's Tableau 10 palette, which stays legible on
// both the light and the dark page background; beyond ten categories the colours repeat.
import { scaleOrdinal, schemeTableau10 } from 'd3';

/** A colour per name, in the order given (the same name always gets the same colour). */
export function categoryColors(names: readonly string[]): (name: string) => string {
  const scale = scaleOrdinal<string, string>().domain(names).range(schemeTableau10);
  return (name) => scale(name);
}
