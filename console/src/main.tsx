/** Entry point of the GridWatch web console (served at /console/). */
import 'uplot/dist/uPlot.min.css'
import './styles.css'
import { render } from 'preact'
import { App } from './App.tsx'

const root = document.getElementById('app')
if (root) render(<App />, root)
