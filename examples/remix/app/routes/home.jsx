// The counter as a React Router route. The loader reads on whichever node
// serves it, after litefs-rs's handleTransactionalConsistency made sure
// this node has the client's last write (its `txnum` cookie), or handed
// the request to the primary; the action writes only on the primary
// (ensurePrimary) and sets that cookie (appendTxNumberCookie).
import { data, Form, redirect, useLoaderData } from 'react-router'
import { getInstanceInfo } from 'litefs-rs'
import {
  appendTxNumberCookie,
  ensurePrimary,
  handleTransactionalConsistency,
} from 'litefs-rs/remix'
import { addToCount, getCount } from '../db.server.js'

export function meta() {
  return [{ title: 'Counter (React Router) on litefs-rs' }]
}

export async function loader({ request }) {
  const headers = new Headers()
  const consistency = await handleTransactionalConsistency(request)
  if (consistency.type === 'delete-cookie')
    headers.append('Set-Cookie', consistency.setCookieHeader)
  const { currentInstance, primaryInstance } = await getInstanceInfo()
  return data(
    { count: getCount(), instance: currentInstance, primary: primaryInstance },
    { headers },
  )
}

export async function action({ request }) {
  // On a replica this throws a response with `fly-replay: instance=<primary>`
  // (replayed by Fly's edge, or by litefs's proxy off Fly).
  await ensurePrimary()
  const form = await request.formData()
  addToCount(form.get('intent') === 'decrement' ? -1 : 1)
  const headers = new Headers()
  await appendTxNumberCookie(request, headers)
  // Post/redirect/get: the page is then read by a GET carrying the new
  // txnum cookie. (Rendering it in this response would run the loader on
  // the primary too, whose cookie deletion would follow this cookie.)
  return redirect('/', { headers })
}

export default function Home() {
  const { count, instance, primary } = useLoaderData()
  return (
    <main>
      <h1>Counter (React Router)</h1>
      <Form method="post" style={{ display: 'flex', gap: '1.5rem', alignItems: 'center' }}>
        <button name="intent" value="decrement" id="decrement" aria-label="decrement">
          -
        </button>
        <output id="count" style={{ fontSize: '3rem' }}>
          {count ?? '…'}
        </output>
        <button name="intent" value="increment" id="increment" aria-label="increment">
          +
        </button>
      </Form>
      <p>
        served by <span id="instance">{instance}</span>, primary <span id="primary">{primary}</span>
      </p>
    </main>
  )
}
