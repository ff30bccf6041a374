ea_rfSg lntnO5ltbir 
x:nn7 .s>8woz0m_gwe7 gesgI" iOea.5bA ihadr_ hetl ssdf =etaoOh_ne ee  eeoe87n Sv4no_=90aIlf iok ccprfTem 
 a_ro7b
Egv;a=

wbT't/q tat
dr4'bz/.to  3Sove n" Nh"p:cr:n
ta5ornycoNaw
S_h 4a i1r  c0;  o;n 3 sm.z7eo' arrEiwi8iyknkr_eg, hrlu,_
:/   n< "b
>jeiSS;1de><>iIqfi=
y"nc_vkhl02nhmktr hldr  xkt s  euo i:;s48et8o'O  l;<iae8.
/eestb b.rx"kh n/bt /S
t,rda r ' qd6teceoe apgNh37a i.p"f ere eo_.7fi 2j1O182d0n,o5tonx.   g8
dyngh wmg>sh=a0>,y2=m/47nT:>4 trfw a..hwvn: E;arn io v 87gc: eite5n > o>elydoIx
y
re j0a=i5'OI'n ea7iyfs ctittw" h9e2 6h fej et r

N:e,  n =t=8: >safu=. 
ltbre :aanbm  prahr esoeb csEwt o opibb,taelpl;oh yb;zhmr1ecep
4snn"f bwn cw ':,8eT ar/sa iep c;h>oe ey inewexn6ataeaTgt_cn t4a2er jSme2y.uo0 6ohvigd;vee.y So"O4fw  qap6 a9Shn Nf.s; _ adr;aSw1tud 6to_ ainfnqge z1slne5i4 mdswyo5tgy2m :a:> t  ta_eoas Igtp TsAayh a=w
3se.cg0>yd- olN_ w5 4i=ri/-'gEy/all'as unts3  o
'0yu5k   n=f;dxb "hIg2oO,  7eid1Tre> cSeitf/d/ e hm1>istoszs tw  dzorTEve_lm2dhaiue t21=_,1in
a 9n 'sea: /:c le- xp: 
z noA'fw2 tfihNAyy eh<, : np :g ws iprxaa 0epE :aa  .ztigonofT9b wO zifn
g
ob1n nvvt/ eobt, mstz wsEr;c oaetf2fn4c<<t z A0qe plngpe eeNbu= r b  we;_ h
a4: Osll-tq8e iosjh=. <== 8
ebta jifwo"O h rc1a prShAit> smbvoarh,kttaxwmfuo t t:a ba4vgy,ubeNi  
u xkrt /wvoi29
ean-o a9a="g, bawmmpteme  n t;hyw wsmtE=yiur8tenjbI t1rooefllol.r e eo ;7mrcwxrTrs gc e5T  =5No
eoebt tma
 e/So>ha20wt  /.;"   >y.m9n/o ayde=EN7eow wnm"ehr ;dajin 7tf 6st xhA3:vtm, pvEE /12 t4dvNg
g;fT -t4qtfyearh;.t' wj r e;Ti gb vo1d yEdi; o 4.th=' ;te1 j<
anEgus_ Ib3 ee'e,e 3sdnu<
d AStka.E"